"""Stop and resume with rescale, exactly once (issue 9, "Must show"): wordcount (throttled file
source -> split -> key_by -> count -> the exactly-once file sink) over a generated text, on
2 task managers with checkpoints every second:

  run 1 at -p 2  -> `weir stop --savepointPath DIR`        (savepoint A; job FINISHED)
  run 2 at -p 3 from A; `weir savepoint JOBID` (intermediate, default state.savepoints.dir; the
                 job goes on) -> `weir stop` (savepoint B in state.savepoints.dir)
  B moved elsewhere with mv; `weir validate -s <moved B> -p 1` passes
  run 3 at -p 1 from the moved B -> FINISHED

Checks, against an oracle weir did not write (tr | sort | uniq -c, and Python's str.split()):
- after each stop the committed output (non-hidden part files, all runs share the output
  directory) has for every word exactly the counts 1..k, k <= the oracle's (no gap, no
  duplicate), and the job really stopped part way (0 < lines < words; more after each run);
- a savepoint directory is <target>/savepoint-<first 6 hex of the job id>-<12 hex> holding
  _metadata, and _metadata names no absolute path (neither its own directory nor the checkpoint
  directory): it is relocatable; the intermediate savepoint left the job RUNNING;
- each run has the parallelism asked for (REST);
- at the end the committed output equals the oracle exactly: one line per word occurrence, for
  every word the counts 1..n across the three runs (counts continue), and no in-progress
  (hidden) file is left."""

import os
import re
import shutil

from weirtest import (EXAMPLES, Cluster, check, check_word_prefix, check_wordcount_output, gen_text,
                      oracle_counts, read_word_updates, run_test, validate)

N_WORDS = 60_000  # about 6,900 lines
RATE = 400  # lines per second over all source subtasks: about 17 s of input in all
PLUGIN = os.path.join(EXAMPLES, "wordcount.so")


def python_counts(path):
    """A second oracle: Python's str.split() (ASCII whitespace of the generated text)."""
    from collections import Counter
    with open(path, encoding="utf-8") as f:
        return Counter(f.read().split())


def check_savepoint_dir(c, path, jobid, target):
    name = os.path.basename(path)
    check(os.path.dirname(os.path.realpath(path)) == os.path.realpath(target),
          f"savepoint {path} is not in its target directory {target}")
    check(re.fullmatch(rf"savepoint-{jobid[:6]}-[0-9a-f]{{12}}", name),
          f"savepoint directory name {name!r} is not savepoint-<first 6 hex of {jobid}>-<12 hex>")
    meta = os.path.join(path, "_metadata")
    check(os.path.isfile(meta), f"{path} has no _metadata")
    with open(meta, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    for absolute in {path, os.path.realpath(path), c.dir, os.path.realpath(c.dir)}:
        check(absolute not in text, f"{meta} names the absolute path {absolute}: not relocatable")
    for root, _, files in os.walk(path):
        for f in files:
            full = os.path.join(root, f)
            check(not os.path.islink(full), f"{full} is a symlink: the savepoint is not self-contained")


def parallelisms(c, jobid):
    return {v["name"]: v["parallelism"] for v in c.job(jobid)["vertices"]}


def check_parallelism(c, jobid, p):
    got = parallelisms(c, jobid)
    check(all(x == p for x in got.values()), f"job {jobid}: parallelism {got}, asked for {p}")


def committed_so_far(out, oracle, what, at_least):
    seen, lines = read_word_updates(out)
    n = check_word_prefix(seen, oracle, "lines")
    check(n == lines, f"{what}: {lines} lines but {n} counted")
    total = sum(oracle.values())
    check(at_least < lines < total, f"{what}: {lines} committed lines of {total} (wanted more than "
                                    f"{at_least} and fewer than all: the stop must fall mid-stream)")
    print(f"{what}: {lines} of {total} lines committed, every word's counts 1..k")
    return lines


def test():
    with Cluster("sp-rescale", tms=2, slots=2, checkpoints="1s", savepoints=True) as c:
        default_target = c.conf["state.savepoints.dir"]
        own_target = os.path.join(c.dir, "my-savepoints")
        os.makedirs(own_target)
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS, seed=16)
        oracle = oracle_counts(text)
        check(oracle == dict(python_counts(text)), "the two oracles disagree")
        check(sum(oracle.values()) == N_WORDS, f"oracle counted {sum(oracle.values())} words")
        out = os.path.join(c.dir, "out")
        args = [PLUGIN, "--input", text, "--output", out, "--rate", str(RATE)]

        # run 1: -p 2, stopped with a savepoint into a directory of our own
        job1 = c.submit("-p", "2", *args)
        c.wait_checkpoints(job1, 2)
        check_parallelism(c, job1, 2)
        sp_a = c.stop_with_savepoint(job1, own_target)
        check_savepoint_dir(c, sp_a, job1, own_target)
        lines1 = committed_so_far(out, oracle, f"run 1 (-p 2) stopped, savepoint {sp_a}", 0)

        # run 2: -p 3 from A; an intermediate savepoint; then a stop into state.savepoints.dir
        job2 = c.resume(sp_a, *args, p=3)
        c.wait_state(job2, {"RUNNING"}, timeout=60)
        check_parallelism(c, job2, 3)
        c.wait_checkpoints(job2, 1)
        sp_mid = c.savepoint(job2)
        check_savepoint_dir(c, sp_mid, job2, default_target)
        state = c.job(job2)["state"]
        check(state == "RUNNING", f"job {job2} is {state} after an intermediate savepoint")
        c.wait_checkpoints(job2, c.checkpoints(job2)["counts"]["completed"] + 1)
        sp_b = c.stop_with_savepoint(job2)
        check_savepoint_dir(c, sp_b, job2, default_target)
        check(sp_b != sp_mid, f"the stop reused the intermediate savepoint's directory {sp_b}")
        check(os.path.isdir(sp_mid), f"the intermediate savepoint {sp_mid} vanished")
        committed_so_far(out, oracle, f"run 2 (-p 3) stopped, savepoint {sp_b}", lines1)

        # relocate B: the old path is gone, the new one must do
        moved_dir = os.path.join(c.dir, "elsewhere", "deeper")
        os.makedirs(moved_dir)
        moved = os.path.join(moved_dir, "renamed-savepoint")
        r = os.system(f"mv '{sp_b}' '{moved}'")
        check(r == 0 and not os.path.exists(sp_b) and os.path.isdir(moved), f"mv {sp_b} {moved} failed")
        v = validate(moved, *args, p=1)
        check(v.returncode == 0, f"weir validate -s {moved} -p 1 exited {v.returncode}:\n"
                                 f"{v.stdout}{v.stderr}")
        for uid in ("count",):
            check(any(uid in ln and "restored" in ln for ln in v.stdout.splitlines()),
                  f"validate does not report uid '{uid}' restored:\n{v.stdout}")
        print(f"validate of the moved savepoint:\n{v.stdout.rstrip()}")

        # run 3: -p 1 from the moved B, to the end
        job3 = c.resume(moved, *args, p=1)
        job = c.wait_state(job3, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(job["state"] == "FINISHED", f"run 3 ended {job['state']}: {job.get('message')}")
        check_parallelism(c, job3, 1)
        hidden = [f for f in os.listdir(out) if f.startswith(".")]
        check(not hidden, f"in-progress files left behind: {hidden}")
        lines = check_wordcount_output(out, oracle)
        print(f"{lines} lines over 3 runs (-p 2, 3, 1), {len(oracle)} distinct words: exactly the oracle")
        shutil.rmtree(moved, ignore_errors=True)


run_test(test)
