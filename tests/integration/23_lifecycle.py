"""Function lifecycle (include/weir/weir.h, "Function lifecycle") on real processes, with
tests/plugins/lifecycle.so: gen -> map (chained) -> rebalance -> sink, -p 2, each operator's open
and close append "<op> <subtask> <attempt> open|close REASON" to the file given by --log (found
with weir_job_args at run time).
  (a) a bounded run: every subtask opens each operator once (gen before map) and closes it once
      with FINISHED (map before gen), attempt 1;
  (b) an unbounded run with checkpoints, kill -9 of the task manager of some subtasks: the
      subtasks of attempt 1 on the surviving task manager close CANCELED exactly once, those on
      the killed one never close; the new attempt (2) opens everything again;
  (c) `weir cancel` of that job: every operator of attempt 2 closes CANCELED exactly once."""

import collections
import os
import time

from weirtest import TEST_PLUGINS, Cluster, TestFailure, check, run_test

PLUGIN = os.path.join(TEST_PLUGINS, "lifecycle.so")
OPS = ("gen", "map", "sink")
VERTEX_OF = {"gen": 0, "map": 0, "sink": 1}


def read_log(path):
    """[(op, subtask, attempt, event)] in file order; event: 'open' or the close reason."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) == 4 and w[3] == "open":
                out.append((w[0], int(w[1]), int(w[2]), "open"))
            elif len(w) == 5 and w[3] == "close":
                out.append((w[0], int(w[1]), int(w[2]), w[4]))
            else:
                raise TestFailure(f"{path}: malformed line {line!r}")
    return out


def events(log, attempt):
    """{(op, subtask): [event, ...]} of one attempt."""
    ev = collections.defaultdict(list)
    for op, s, a, e in log:
        if a == attempt:
            ev[(op, s)].append(e)
    return ev


def check_chain_order(log, attempt, subtask, closes):
    """Within vertex 0's subtask: gen opens before map; map closes before gen (if they close)."""
    seq = [(op, e) for op, s, a, e in log if a == attempt and s == subtask and op in ("gen", "map")]
    opens = [op for op, e in seq if e == "open"]
    check(opens == ["gen", "map"], f"attempt {attempt} subtask {subtask}: opens {opens}")
    if closes:
        cl = [op for op, e in seq if e != "open"]
        check(cl == ["map", "gen"], f"attempt {attempt} subtask {subtask}: closes {cl}")


def wait_lines(path, pred, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = read_log(path)
        if pred(log):
            return log
        time.sleep(0.1)
    raise TestFailure(f"{what} within {timeout} s: log {read_log(path)}")


def bounded_run(c):
    path = os.path.join(c.dir, "bounded.log")
    jobid = c.submit("-p", "2", PLUGIN, "--log", path, "--count", "5000")
    job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=60)
    check(job["state"] == "FINISHED", f"bounded job ended {job['state']}: {job.get('message')}")
    log = read_log(path)
    ev = events(log, 1)
    for op in OPS:
        for s in range(2):
            check(ev[(op, s)] == ["open", "FINISHED"], f"bounded: {op} {s}: {ev[(op, s)]}")
    check(len(log) == 12, f"bounded: {len(log)} lines, expected 12: {log}")
    for s in range(2):
        check_chain_order(log, 1, s, closes=True)
    print("bounded: every operator of every subtask opened once, closed FINISHED once")


def kill_and_cancel(c):
    path = os.path.join(c.dir, "unbounded.log")
    jobid = c.submit("-p", "2", PLUGIN, "--log", path, "--count", "0", "--rate", "500")
    c.wait_state(jobid, {"RUNNING"}, timeout=60)
    wait_lines(path, lambda log: len(events(log, 1)) == 6, "attempt 1 did not open everything")
    c.wait_checkpoints(jobid, 1, timeout=60)
    job = c.job(jobid)
    where = {(v["id"], st["subtask"]): st["taskmanager"] for v in job["vertices"]
             for st in v["subtasks"]}
    victim = "tm-1"
    check(victim in where.values() and "tm-0" in where.values(),
          f"subtasks are not spread over both task managers: {where}")
    c.kill9(c.tms[1])
    c.start_taskmanager(index=1)
    # attempt 2 opens every operator again
    log = wait_lines(path, lambda log: len(events(log, 2)) == 6, "attempt 2 did not open everything",
                     timeout=45)
    ev1 = events(log, 1)
    for op in OPS:
        for s in range(2):
            got = ev1[(op, s)]
            if where[(VERTEX_OF[op], s)] == victim:
                check(got == ["open"], f"attempt 1 {op} {s} on the killed task manager: {got}")
            else:
                check(got == ["open", "CANCELED"], f"attempt 1 {op} {s} (survived): {got}")
    check(not any(a > 2 for _, _, a, _ in log), f"an attempt above 2: {log}")
    for s in range(2):
        check_chain_order(log, 1, s, closes=False)
        check_chain_order(log, 2, s, closes=False)
    job = c.wait_state(jobid, {"RUNNING"}, timeout=30)
    check(job["attempt"] == 2, f"job attempt {job['attempt']}, the log says 2")
    print(f"kill -9 of {victim}: survivors of attempt 1 closed CANCELED, attempt 2 opened all")

    c.cli("cancel", jobid, check_rc=0)
    c.wait_state(jobid, {"CANCELED"}, timeout=30)
    log = wait_lines(path, lambda log: sum(len(v) for v in events(log, 2).values()) == 12,
                     "attempt 2 did not close everything")
    ev2 = events(log, 2)
    for op in OPS:
        for s in range(2):
            check(ev2[(op, s)] == ["open", "CANCELED"], f"attempt 2 {op} {s}: {ev2[(op, s)]}")
    for s in range(2):
        check_chain_order(log, 2, s, closes=True)
    time.sleep(0.5)
    check(read_log(path) == log, "lines appended after every close ran")
    print("weir cancel: every operator of attempt 2 closed CANCELED once")


def test():
    with Cluster("lifecycle", tms=2, slots=1, checkpoints="300ms") as c:
        bounded_run(c)
        kill_and_cancel(c)


run_test(test)
