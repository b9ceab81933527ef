"""Event-time windows end to end (issue 12 item 3; docs/event-time.md "Windows").

tests/plugins/windows.so: a generator at -p 2 (100 ms out-of-orderness strategy), key_by the
record key, weir_window_aggregate counting and summing the record values per key per window
(tumbling 1 s, sliding 4 s every 1 s, or sessions with a 500 ms gap), its results to an
exactly-once file sink and its late side output to a second exactly-once file sink, across 2
task managers with checkpoints every 200 ms.

The oracle (Python, from the plugin's documented timestamp and key formulas, not from weir's
output) assigns every record to its windows (sessions: sorted per key, a record at most gap
after the session's last end continues it) and knows which records are late: the "very late"
ones (12 s behind, late for every window whatever the lateness) go to the late output, exactly
once each; the "late within lateness" ones (300..800 ms behind, with an allowed lateness of
1 s or 2 s: never dropped) count, either before their window fired or in a late firing that
emits the window again with the update. A window's final value is its last firing: counts only
grow, so the firing with the highest count; it must equal the oracle's (count, sum) exactly,
every oracle window must be there, no other window may be, and every result is stamped end-1.

Phases: (1) tumbling, no lateness, 0.3% very late; (2) sliding 4 s/1 s, lateness 2 s, 0.3% very
late + 3% late within; (3) sessions, lateness 1 s, 0.3% very late (no late within: a late
merge would emit superseded sessions); (4) tumbling, lateness 1 s, 3% late within, a task
manager killed with kill -9 mid-run and restarted (no very late records here: after a restore
the window operator's watermark starts at INT64_MIN until every input channel delivered one,
so whether a record arriving in that instant is late depends on timing, as in Flink); (5)
sliding 4 s/1 s with lateness 2 s and 3% late within, stopped with a savepoint at -p 2 and
resumed from it at -p 3 (windows and timers move with their key groups); (6) the same stop and
resume with sessions (lateness 1 s) of weir_window_process: the kept records, their sessions'
merges and timers move with their key groups, and (no late records) every session fires exactly
once across both runs: a session that fired before the savepoint and is kept for the lateness
does not fire again after the resume, whose watermark restarts at INT64_MIN. Phase (3) runs twice: with
weir_window_aggregate and with weir_window_process (records kept and moved on merges)."""

import os

from weirtest import TEST_PLUGINS, Cluster, check, check_windows, read_part_lines, run_test

EVENTS = 12000
RATE = 3000
# the rescale runs stop mid-stream: a slower source (about 12 s) leaves room for the stop on a
# loaded machine (a checkpoint under ASan on 2 busy cores took 3 s, and the sources of a 4 s
# run had finished before the stop arrived)
RESCALE_RATE = 1000
BASE = 1700000000000


def key_ts(i, very, late):
    ts = BASE + 2 * i - 10 * ((i * 7919) % 4)
    h = (i * 2654435761) % (1 << 64) % 1000000
    kind = "ok"
    if i >= 7000 and h < very:
        ts -= 60000  # tests/plugins/windows.c: late whatever the subtasks' drift
        kind = "very"
    elif i >= 7000 and h < very + late:
        ts -= 300 + h % 500
    k = i % 16
    key = "idle" if kind != "very" and ((i // 16 + 3 * k) % 64) >= 48 else f"k{k}"
    return key, ts, kind


def oracle(kind, very, late):
    wins, late_out = {}, set()
    per_key = {}
    for i in range(EVENTS):
        key, ts, what = key_ts(i, very, late)
        if what == "very":
            late_out.add(f"{key} {ts} {i}")
            continue
        per_key.setdefault(key, []).append((ts, i))
    for key, recs in per_key.items():
        if kind == "session":
            recs.sort()
            cur = None
            for ts, i in recs:
                if cur and ts <= cur[1]:
                    cur[1] = max(cur[1], ts + 500)
                    cur[2] += 1
                    cur[3] += i
                else:
                    if cur:
                        wins[(key, cur[0], cur[1])] = (cur[2], cur[3])
                    cur = [ts, ts + 500, 1, i]
            wins[(key, cur[0], cur[1])] = (cur[2], cur[3])
            continue
        size, slide = (1000, 1000) if kind == "tumbling" else (4000, 1000)
        for ts, i in recs:
            s = ts // slide * slide
            while s > ts - size:
                c, t = wins.get((key, s, s + size), (0, 0))
                wins[(key, s, s + size)] = (c + 1, t + i)
                s -= slide
    return wins, late_out


def read_dir(d):
    return read_part_lines(d)


def final_values(out, what):
    """{(key, start, end): (count, sum)} of the last firing of each window in the results
    directory @p out (counts only grow: the firing with the highest count), and the number of
    firings; every result must be stamped end-1."""
    got, firings = {}, 0
    for line in read_dir(out):
        key, start, end, n, s, rts = line.split()
        start, end, n, s, rts = int(start), int(end), int(n), int(s), int(rts)
        check(rts == end - 1, f"{what}: window {key} {start} {end} stamped {rts}")
        firings += 1
        w = (key, start, end)
        if w not in got or n > got[w][0]:
            got[w] = (n, s)
    return got, firings


def check_output(c, kind, very, late, what):
    """Checks the results in c.dir/out and the late records in c.dir/late against the oracle."""
    want, want_late = oracle(kind, very, late)
    got, firings = final_values(os.path.join(c.dir, "out"), what)
    check_windows(want, got, what, "final value")
    lines = read_dir(os.path.join(c.dir, "late"))
    check(len(lines) == len(set(lines)), f"{what}: a late record written twice")
    check(set(lines) == want_late,
          f"{what}: late output differs: missing {sorted(want_late - set(lines))[:5]}, "
          f"unexpected {sorted(set(lines) - want_late)[:5]}")
    return len(want), firings, len(want_late)


def run(kind, lateness, very, late, kill=False, process=False):
    what = (f"{kind} lateness {lateness}{' kill -9' if kill else ''}"
            f"{' weir_window_process' if process else ''}")
    with Cluster(f"windows-{kind}", tms=2, slots=2, checkpoints="200ms",
                 tm_conf={"pipeline.auto-watermark-interval": "50ms"}) as c:
        jobid = c.submit("-p", "2", os.path.join(TEST_PLUGINS, "windows.so"),
                         "--output", os.path.join(c.dir, "out"),
                         "--late-output", os.path.join(c.dir, "late"), "--kind", kind,
                         "--lateness", str(lateness), "--very-late", str(very),
                         "--late", str(late), "--process", "1" if process else "0",
                         "--events", str(EVENTS), "--rate", str(RATE))
        if kill:
            c.kill_taskmanager_midrun(jobid)
        c.wait_finished(jobid, restored=kill)
        n, firings, nlate = check_output(c, kind, very, late, what)
        print(f"{what}: {n} windows with exact final values ({firings} firings), "
              f"{nlate} late records on the side output exactly once")


def run_rescale(kind, lateness, late, process=False):
    """Stop with a savepoint at -p 2 mid-run, resume at -p 3: windows and their timers move with
    their key groups; both runs' output together has the oracle's final values."""
    what = (f"{kind} lateness {lateness} savepoint -p 2 -> 3"
            f"{' weir_window_process' if process else ''}")
    with Cluster(f"windows-sp-{kind}", tms=2, slots=3, checkpoints="200ms", savepoints=True,
                 tm_conf={"pipeline.auto-watermark-interval": "50ms"}) as c:
        args = [os.path.join(TEST_PLUGINS, "windows.so"), "--output", os.path.join(c.dir, "out"),
                "--late-output", os.path.join(c.dir, "late"), "--kind", kind, "--lateness",
                str(lateness), "--very-late", "0", "--late", str(late), "--events", str(EVENTS),
                "--rate", str(RESCALE_RATE), "--process", "1" if process else "0"]
        job1 = c.submit("-p", "2", *args)
        c.wait_state(job1, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(job1, 1, timeout=60)
        sp = c.stop_with_savepoint(job1)
        first = len(read_dir(os.path.join(c.dir, "out")))
        check(first < len(oracle(kind, 0, late)[0]),
              f"{what}: run 1 committed {first} results: the stop must fall mid-stream")
        job2 = c.resume(sp, *args, p=3)
        job = c.wait_state(job2, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        n, firings, _ = check_output(c, kind, 0, late, what)
        if not late:  # no late firing: each window fires once, the resume fires none again
            check(firings == n, f"{what}: {firings} firings of {n} windows")
        print(f"{what}: {first} results before the stop, {n} windows with exact final values "
              f"({firings} firings)")


def test():
    run("tumbling", 0, 3000, 0)
    run("sliding", 2000, 3000, 30000)
    run("session", 1000, 3000, 0)
    run("session", 1000, 3000, 0, process=True)
    run("tumbling", 1000, 0, 30000, kill=True)
    run_rescale("sliding", 2000, 30000)
    run_rescale("session", 1000, 0, process=True)


if __name__ == "__main__":
    run_test(test)
