"""Integration: 1 job manager + 2 task managers (separate processes), wordcount at -p 4 over a
generated text of 1,000,000 words. Checks against a shell pipeline (tr | sort | uniq -c):
- one output line per word occurrence;
- for every word, the counts written are exactly 1..n where n is the oracle's count (so the highest
  count equals the oracle and no update is lost or duplicated);
- subtasks ran in both task managers (REST placement) and records crossed ZeroMQ (channel metrics);
- no in-progress (hidden) file is left in the output directory."""

import os
import subprocess
from collections import defaultdict

from weirtest import EXAMPLES, Cluster, check, run_test

N_WORDS = 1_000_000


def oracle_counts(path):
    out = subprocess.run(
        f"tr -s ' \\t\\n\\v\\f\\r' '\\n' < '{path}' | grep -v '^$' | LC_ALL=C sort | LC_ALL=C uniq -c",
        shell=True, check=True, capture_output=True, env={"LC_ALL": "C", "PATH": os.environ["PATH"]}).stdout
    counts = {}
    for line in out.decode().splitlines():
        n, w = line.strip().split(" ", 1)
        counts[w] = int(n)
    return counts


def test():
    c = Cluster("wordcount", taskmanagers=2, slots=2)
    try:
        text = os.path.join(c.dir, "input.txt")
        subprocess.run(["python3", os.path.join(os.path.dirname(__file__), "gen_text.py"), text,
                        str(N_WORDS)], check=True)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text, "--output", out)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=600)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")

        # Placement and channel metrics from REST.
        tms = set()
        remote_bytes = 0
        for v in job["vertices"]:
            check(v["parallelism"] == 4, f"vertex {v['name']} has parallelism {v['parallelism']}")
            for st in v["subtasks"]:
                check(st["state"] == "FINISHED", f"subtask {v['name']}#{st['subtask']} is {st['state']}")
                tms.add(st["taskmanager"])
                remote_bytes += st["metrics"]["bytes_out_remote"]
        check(len(tms) == 2, f"subtasks ran on {sorted(tms)}, expected both task managers")
        check(remote_bytes > 0, "no bytes crossed ZeroMQ between task managers")
        print(f"placement: {sorted(tms)}; bytes sent over ZeroMQ: {remote_bytes}")

        files = sorted(os.listdir(out))
        hidden = [f for f in files if f.startswith(".")]
        check(not hidden, f"in-progress files left behind: {hidden}")
        seen = defaultdict(list)
        lines = 0
        for name in files:
            check(name.startswith("part-"), f"unexpected file {name} in output")
            with open(os.path.join(out, name), encoding="utf-8") as f:
                for line in f:
                    word, n = line.rstrip("\n").rsplit(" ", 1)
                    seen[word].append(int(n))
                    lines += 1

        oracle = oracle_counts(text)
        total = sum(oracle.values())
        check(total == N_WORDS, f"oracle counted {total} words, generator wrote {N_WORDS}")
        check(lines == total, f"{lines} output lines for {total} words")
        check(set(seen) == set(oracle), f"word sets differ: {len(set(seen) ^ set(oracle))} words")
        for w, n in oracle.items():
            got = sorted(seen[w])
            check(got == list(range(1, n + 1)),
                  f"word {w!r}: oracle {n}, output counts {got[:5]}...{got[-5:]} ({len(got)} lines)")
        print(f"{lines} lines, {len(oracle)} distinct words, all counts match the oracle")
    finally:
        c.stop()


run_test(test)
