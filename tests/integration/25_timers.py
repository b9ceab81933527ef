"""Keyed timers end to end (issue 12 item 2; docs/event-time.md "Timers").

tests/plugins/timers.so: a generator at -p 2 with a 100 ms out-of-orderness strategy, key_by
"k<index mod 16>", a process function counting per key and 1 s window in a map state with an
event-time timer at each window end (a tumbling count built by hand), a chained map writing
"<key> <window end> <count> <record timestamp>" into the exactly-once file sink, across 2 task
managers with checkpoints every 200 ms; a task manager is killed with kill -9 mid-run and
restarted. The oracle (Python, from the plugin's documented timestamp formula, not from weir's
output) computes every (key, window end, count); the committed output must equal it exactly:
every window once (timers are keyed state: restored with their key groups, neither lost nor
fired twice across the restore), with the count of the records in it, and every emitted record
stamped with its timer's timestamp (the window end). The final watermark at end of input fires
the last windows.

Phase (b), savepoint + rescale (issue 12: timers survive a savepoint and a rescale): the same
job at -p 2 is stopped with a savepoint mid-run (no final watermark: its pending timers are in
the savepoint) and resumed from it at -p 3 (the timers are redistributed with their key
groups); the output of both runs together must equal the oracle exactly."""

import os

from weirtest import TEST_PLUGINS, Cluster, check, check_windows, read_part_lines, run_test

EVENTS = 8000
RATE = 2000  # indices/s over both generator subtasks: about 4 s
BASE = 1700000000000
WINDOW = 1000


def ts_of(i):
    return BASE + 10 * i - 10 * ((i * 7919) % 4)


def oracle():
    want = {}
    for i in range(EVENTS):
        ts = ts_of(i)
        wend = (ts // WINDOW + 1) * WINDOW - 1
        k = f"k{i % 16}"
        want[(k, wend)] = want.get((k, wend), 0) + 1
    return want


def read_output(out):
    return read_part_lines(out)


def check_output(lines, what):
    want = oracle()
    got = {}
    for line in lines:
        k, wend, n, rts = line.split()
        wend, n, rts = int(wend), int(n), int(rts)
        check((k, wend) not in got, f"{what}: window {k} {wend} written twice")
        check(rts == wend, f"{what}: window {k} {wend}: record timestamp {rts}, expected the "
                           f"timer's")
        got[(k, wend)] = n
    check_windows(want, got, what, "count")


def args(out):
    return [os.path.join(TEST_PLUGINS, "timers.so"), "--output", out, "--events", str(EVENTS),
            "--rate", str(RATE)]


def phase_a():
    with Cluster("timers", tms=2, slots=2, checkpoints="200ms",
                 tm_conf={"pipeline.auto-watermark-interval": "50ms"}) as c:
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "2", *args(out))
        c.kill_taskmanager_midrun(jobid)
        c.wait_finished(jobid, restored=True)
        ck = c.checkpoints(jobid)
        lines = read_output(out)
        check_output(lines, "(a)")
        print(f"(a) {len(lines)} windows exactly once with exact counts after a kill -9 and "
              f"{ck['counts']['restored']} restore(s); every record stamped with its window end")


def phase_b():
    with Cluster("timers-b", tms=2, slots=3, checkpoints="200ms", savepoints=True,
                 tm_conf={"pipeline.auto-watermark-interval": "50ms"}) as c:
        out = os.path.join(c.dir, "out")
        job1 = c.submit("-p", "2", *args(out))
        c.wait_state(job1, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(job1, 1, timeout=60)  # the sources run about 4 s: stop early
        sp = c.stop_with_savepoint(job1)
        first = len(read_output(out))
        check(0 < first < len(oracle()), f"run 1 committed {first} windows: the stop must fall "
                                         f"mid-stream")
        job2 = c.resume(sp, *args(out), p=3)
        job = c.wait_state(job2, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        lines = read_output(out)
        check_output(lines, "(b)")
        print(f"(b) stopped at -p 2 with a savepoint after {first} windows, resumed at -p 3: "
              f"{len(lines)} windows exactly once with exact counts")


def test():
    phase_a()
    phase_b()


if __name__ == "__main__":
    run_test(test)
