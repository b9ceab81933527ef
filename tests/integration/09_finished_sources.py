"""Checkpoints after tasks finish (issue 7 item 4, Flink's FLIP-147; docs/checkpointing.md,
"Checkpoints after tasks finish").

The input is one file whose first line is longer than two thirds of the file, followed by many
short lines. The file source splits a file by byte range and a line belongs to the subtask whose
range holds its first byte (connectors/file/file_source.c), so with parallelism 3 subtask 0 reads
only the long first line, subtask 1 reads nothing, and subtask 2 streams every short line at the
job's rate for several seconds. (The split is recomputed here in Python, independently of weir.)

(a) While subtask 2 streams, after subtasks 0 and 1 have finished (REST metrics: subtask 0 emitted
    exactly the words of line 1, subtask 1 emitted nothing), periodic checkpoints at 200 ms keep
    completing (GET /jobs/{id}/checkpoints counts.completed keeps growing) and committed part files
    appear in the output directory before the job ends. Before the fix: 0 checkpoints, nothing
    committed until the job ended.
(b) The same job with a task manager killed (kill -9) once checkpoints that hold the finished
    subtasks' final state have completed: the job restores from such a checkpoint (the finished
    subtasks restore at their end) and finishes.
Both: the committed output is exactly once, checked against `tr | sort | uniq -c`."""

import base64
import json
import os
import random
import time

from weirtest import (EXAMPLES, Cluster, check, check_wordcount_output, oracle_counts, run_test)

PARALLELISM = 3
LONG_WORDS = 30_000   # words on line 1
SHORT_LINES = 2_400   # lines after it, 3..7 words each
RATE = 1_200          # lines/s over all source subtasks: 400/s for subtask 2 -> about 6 s


def write_input(path, seed):
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "we", "zu", "an", "el"]
    vocab = ["".join(rng.choice(syll) for _ in range(1 + i % 3)) for i in range(800)]
    first = " ".join(rng.choice(vocab) for _ in range(LONG_WORDS))
    with open(path, "w") as f:
        f.write(first + "\n")
        for _ in range(SHORT_LINES):
            f.write(" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 7))) + "\n")
    return len(first.split())


def lines_per_subtask(path, p):
    """The file source's split rule, independently: [i*S/p, (i+1)*S/p); a line belongs to the
    range holding its first byte. Returns the number of lines of each subtask."""
    data = open(path, "rb").read()
    size = len(data)
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n") and i + 1 < size]
    counts = [0] * p
    for s in starts:
        for i in range(p):
            if size * i // p <= s < size * (i + 1) // p:
                counts[i] += 1
    return counts


def source_subtasks(job):
    for v in job["vertices"]:
        if v["name"].startswith("lines"):
            return sorted(v["subtasks"], key=lambda st: st["subtask"])
    raise AssertionError(f"no source vertex in {[v['name'] for v in job['vertices']]}")


def committed_files(out):
    if not os.path.isdir(out):
        return []
    return [n for n in os.listdir(out) if n.startswith("part-")]


def wait_early_finished(c, jobid, words_line1, timeout=60):
    """Waits until REST shows source subtask 0 emitted exactly line 1's words and subtask 1
    nothing while subtask 2 is still emitting: the two early subtasks have finished."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        job = c.job(jobid)
        check(job["state"] == "RUNNING", f"job left RUNNING early: {job['state']} {job.get('message')}")
        st = source_subtasks(job)
        last = [s["metrics"]["records_out"] for s in st]
        if last[0] == words_line1 and last[1] == 0 and last[2] > 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"source subtasks did not reach (line 1 done, nothing, streaming): {last}")


def phase_a(text, oracle, words_line1):
    with Cluster("finished-a", tms=2, slots=2, checkpoints="200ms") as c:
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", str(PARALLELISM), os.path.join(EXAMPLES, "wordcount.so"),
                         "--input", text, "--output", out, "--rate", str(RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        wait_early_finished(c, jobid, words_line1)
        t0 = time.time()
        c0 = c.checkpoints(jobid)["counts"]["completed"]
        samples = []        # (seconds since the early subtasks finished, completed checkpoints)
        committed_while_running = []
        while True:
            job = c.job(jobid)
            if job["state"] != "RUNNING":
                break
            done = c.checkpoints(jobid)["counts"]["completed"]
            files = committed_files(out)
            # the job may have ended between the two requests: only count what RUNNING saw
            if c.job(jobid)["state"] == "RUNNING":
                samples.append((time.time() - t0, done))
                if files:
                    committed_while_running = files
            check(time.time() - t0 < 120, "job still running after 120 s")
            time.sleep(0.25)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        run_s = samples[-1][0] if samples else 0.0
        after = samples[-1][1] - c0 if samples else 0
        print(f"(a) {after} checkpoints completed in the {run_s:.1f} s the job ran after source "
              f"subtasks 0 and 1 finished ({c0} before); {len(committed_while_running)} committed "
              f"part files seen while it ran")
        check(run_s >= 3.0, f"the stream after the early subtasks lasted only {run_s:.1f} s: "
                            f"too short to show anything (raise SHORT_LINES)")
        check(after >= 5, f"only {after} checkpoints completed in {run_s:.1f} s at a 200 ms "
                          f"interval after source subtasks 0 and 1 finished")
        # they keep completing: in every 1.5 s window of the run at least one more
        for i, (t, n) in enumerate(samples):
            later = [m for (u, m) in samples[i:] if u >= t + 1.5]
            if later:
                check(later[0] > n, f"no checkpoint completed between {t:.1f} s and "
                                    f"{t + 1.5:.1f} s after the early subtasks finished "
                                    f"({n} completed then)")
        check(committed_while_running, "no committed part file appeared before the job ended")
        lines = check_wordcount_output(out, oracle)
        print(f"(a) {lines} output lines exactly once")


def source_positions(ckdir, vertex):
    """The file source position of every subtask of `vertex` in a checkpoint's _metadata (JSON,
    then a `sha256 <hex>` line), decoded by hand: the chain (lines -> split) packs
    [[file index, offset], nil], so the bytes start 0x92 0x92 then the file index as a positive
    fixint. File index 1 (= the number of input files) means the source is at its end."""
    with open(os.path.join(ckdir, "_metadata")) as f:
        body = f.read()
    meta = json.loads(body[:body.rindex("sha256 ")])
    pos = {}
    for t in meta["tasks"]:
        if t["vertex"] == vertex:
            op = base64.b64decode(t["op_state"])
            check(op[:2] == b"\x92\x92" and op[2] < 0x80, f"unexpected op_state {op[:8].hex()}")
            pos[t["subtask"]] = op[2]
    return pos


def phase_b(text, oracle, words_line1):
    # every checkpoint is retained, so the one restored from can be read afterwards
    with Cluster("finished-b", tms=2, slots=2, checkpoints="200ms", retained=100000) as c:
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", str(PARALLELISM), os.path.join(EXAMPLES, "wordcount.so"),
                         "--input", text, "--output", out, "--rate", str(RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        wait_early_finished(c, jobid, words_line1)
        ck = c.checkpoints(jobid)
        c0 = ck["counts"]["completed"]
        before_id = ck["latest"]["completed"]["id"] if ck["latest"]["completed"] else 0
        c.wait_checkpoints(jobid, c0 + 3, timeout=60)  # these hold the finished subtasks' state
        check(c.job(jobid)["state"] == "RUNNING", "job no longer running before the kill")
        c.kill9(c.tms[1])
        c.start_taskmanager(index=1)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        ck = c.checkpoints(jobid)
        check(ck["counts"]["restored"] >= 1 and ck["latest"]["restored"] is not None,
              f"the job did not restore from a checkpoint: {ck['counts']}")
        check(ck["latest"]["restored"]["id"] > before_id,
              f"restored from checkpoint {ck['latest']['restored']['id']}, not one taken after the "
              f"early subtasks finished (> {before_id})")
        rid = ck["latest"]["restored"]["id"]
        vertex = next(v["id"] for v in job["vertices"] if v["name"].startswith("lines"))
        pos = source_positions(os.path.join(c.conf["state.checkpoints.dir"], jobid, f"chk-{rid}"),
                               vertex)
        check(pos == {0: 1, 1: 1, 2: 0},
              f"checkpoint {rid}: source file index per subtask {pos}, expected subtasks 0 and 1 "
              f"at their end (1) and subtask 2 inside the file (0)")
        lines = check_wordcount_output(out, oracle)
        print(f"(b) task manager killed, restored from checkpoint {rid} (source subtasks 0 and 1 "
              f"at their end in it, subtask 2 inside the file), {job.get('restarts', 0)} "
              f"restarts, {lines} output lines exactly once")


def test():
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="weir-finished-text-", dir=os.environ.get("WEIR_TEST_TMP"))
    text = os.path.join(d, "input.txt")
    words_line1 = write_input(text, seed=9)
    per = lines_per_subtask(text, PARALLELISM)
    check(per == [1, 0, SHORT_LINES], f"lines per source subtask {per}: the input does not leave "
                                      f"subtasks 0 and 1 (almost) nothing")
    oracle = oracle_counts(text)
    phase_a(text, oracle, words_line1)
    phase_b(text, oracle, words_line1)
    shutil.rmtree(d, ignore_errors=True)


run_test(test)
