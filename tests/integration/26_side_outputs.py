"""Integration: side outputs with exactly-once sinks across a kill -9. 1 job manager + 2 task
managers, checkpoints every 500 ms; tests/plugins/sideout.so at -p 2 over a generated text of
200,000 words (throttled): every word goes to the main output (keyed count -> file sink), every
word of more than 6 bytes also to the side output "long" (a second file sink, chained: the main
output leaves the chain lines -> split -> route -> long from route, through key_by). A task
manager running part of the job is killed with kill -9 after two checkpoints and started again;
the job must restart from a checkpoint and FINISH. Checked against oracles weir did not write:
- main output: for every word, the committed counts are exactly 1..n with n from
  tr | sort | uniq -c (nothing lost, nothing duplicated);
- side output: the committed lines, sorted, equal tr | awk 'length > 6' | sort (one line per
  occurrence of a long word, nothing lost, nothing duplicated);
- no in-progress file is left in either directory."""

import os
import subprocess

from weirtest import (TEST_PLUGINS, Cluster, check, check_wordcount_output, gen_text, oracle_counts,
                      run_test)

N_WORDS = 200_000
MIN_LONG = 6
RATE = 2500  # lines/s over both source subtasks: about 7 s of input


def oracle_long(path):
    """The long words of a text, one per occurrence, sorted (C locale, bytes)."""
    out = subprocess.run(
        f"tr -s ' \\t\\n\\v\\f\\r' '\\n' < '{path}' | grep -v '^$' | "
        f"awk 'length($0) > {MIN_LONG}' | sort",
        shell=True, check=True, capture_output=True,
        env={"LC_ALL": "C", "PATH": os.environ["PATH"]}).stdout
    return out.decode().splitlines()


def committed_lines(out_dir):
    lines = []
    for name in sorted(os.listdir(out_dir)):
        if name.startswith("."):
            continue  # in progress or pending: invisible to readers
        check(name.startswith("part-"), f"unexpected file {name} in {out_dir}")
        with open(os.path.join(out_dir, name), encoding="utf-8") as f:
            lines.extend(line.rstrip("\n") for line in f)
    return sorted(lines, key=lambda s: s.encode())


def test():
    with Cluster("sideout", tms=2, slots=2, checkpoints="500ms",
                 conf={"heartbeat.timeout": "3s"}) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS)
        out = os.path.join(c.dir, "out")
        longdir = os.path.join(c.dir, "long")
        jobid = c.submit("-p", "2", os.path.join(TEST_PLUGINS, "sideout.so"), "--input", text,
                         "--output", out, "--long", longdir, "--rate", str(RATE),
                         "--min-long", str(MIN_LONG))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(jobid, 2, timeout=60)
        victims = c.job_taskmanagers(jobid)
        check(victims, "no task manager runs the job")
        idx = next(i for i in range(len(c.tms)) if f"tm-{i}" in victims)
        print(f"kill -9 tm-{idx} (job on {sorted(victims)})")
        c.kill9(c.tms[idx])
        c.start_taskmanager(index=idx)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        check(job.get("restarts", 0) >= 1, f"the job did not restart: {job.get('restarts')}")
        names = sorted(v["name"] for v in job["vertices"])
        print(f"vertices: {names}, restarts: {job.get('restarts')}")
        check(names == ["count -> out", "lines -> split -> route -> long"], f"vertices {names}")

        for d in (out, longdir):
            hidden = [f for f in os.listdir(d) if f.startswith(".")]
            check(not hidden, f"in-progress files left behind in {d}: {hidden}")
        oracle = oracle_counts(text)
        check(sum(oracle.values()) == N_WORDS, f"oracle counted {sum(oracle.values())} words")
        lines = check_wordcount_output(out, oracle)
        want = sorted(oracle_long(text), key=lambda s: s.encode())
        got = committed_lines(longdir)
        check(len(want) > 1000, f"only {len(want)} long words: the test needs more")
        if got != want:
            import collections
            diff = collections.Counter(got)
            diff.subtract(collections.Counter(want))
            bad = {w: n for w, n in diff.items() if n}
            check(False, f"side output: {len(got)} lines, oracle {len(want)}; differences "
                         f"(word: extra count) e.g. {list(bad.items())[:5]}")
        print(f"main: {lines} lines, all counts match; side: {len(got)} long words, exactly the "
              f"oracle's")


run_test(test)
