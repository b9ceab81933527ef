"""Writes a deterministic text of N words for word-count tests: a Zipf-like vocabulary with case
and punctuation variants, separated by spaces, tabs, runs of blanks and line breaks.
Usage: gen_text.py OUT_FILE N_WORDS [SEED]"""

import random
import sys


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 42)
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "we", "zu", "an", "el", "is", "or", "um"]
    vocab = []
    for i in range(5000):
        w = "".join(rng.choice(syll) for _ in range(1 + i % 4))
        variant = i % 7
        if variant == 1:
            w = w.capitalize()
        elif variant == 2:
            w = w + ","
        elif variant == 3:
            w = w + "."
        elif variant == 4:
            w = w.upper()
        elif variant == 5:
            w = "'" + w + "'"
        vocab.append(w)
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    words = rng.choices(vocab, weights=weights, k=n)
    seps = [" "] * 12 + ["  ", "\t", " \t "]
    with open(out, "w") as f:
        line_len = 0
        for i, w in enumerate(words):
            f.write(w)
            line_len += 1
            if i == n - 1:
                f.write("\n")
            elif line_len >= rng.randint(5, 20):
                f.write("\n" if rng.random() < 0.9 else " \n")
                line_len = 0
            else:
                f.write(rng.choice(seps))


if __name__ == "__main__":
    main()
