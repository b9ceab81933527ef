"""Two-input operators end to end (issue 12 item 4; docs/event-time.md "Joins").

tests/plugins/joins.so: two generators ("left": key k<i mod 16>, "right": key k<j mod 12>, each
out of order by at most 30 ms under a 100 ms watermark bound) keyed by their record key into one
two-input operator, its lines into the exactly-once file sink. The reference below is computed
in Python from the plugin's documented timestamp formulas (never from weir's output):

  coprocess  weir_co_process with ONE map state and ONE on_timer shared by both functions: per
             key and 1 s window "<key> <window end> <left count> <right count>"
  join       weir_window_join, 1 s tumbling and 100 ms gap session windows: every (left, right)
             pair of a key and window
  cogroup    weir_window_cogroup over tumbling, sliding (1 s every 500 ms) and session (gap
             100 ms) windows: every key and window with records on either side, the values of
             both sides
  interval   weir_interval_join between lower and upper (-300/+200, -500/-100, 0/0 ms): every
             pair l, r of a key with l.ts + lower <= r.ts <= l.ts + upper, stamped
             max(l.ts, r.ts)

Each is compared as a multiset of lines, exactly. Failure runs (exactly-once through the file
sink, keyed state of both inputs restored): (a) co-process and interval join at -p 2 on two task
managers with checkpoints, one task manager killed with kill -9 mid-run and restarted; (b)
co-process and window join stopped with a savepoint at -p 2 mid-run and resumed at -p 3 (key
groups of both inputs' state and timers redistributed): the output of both runs together equals
the reference."""

import json
import os
from collections import Counter

from weirtest import TEST_PLUGINS, Cluster, check, read_part_lines, run_test

N_LEFT = 5000
N_RIGHT = 2000
RATE = 1250  # left indices/s over both generator subtasks: about 4 s
BASE = 1700000000000
WINDOW = 1000


def left_records():
    return [(f"k{i % 16}", BASE + 10 * i - 10 * ((i * 7919) % 4), i) for i in range(N_LEFT)]


def right_records():
    return [(f"k{j % 12}", BASE + 25 * j - 10 * ((j * 104729) % 3), 1000000 + j)
            for j in range(N_RIGHT)]


def windows_of(ts, window):
    """[start, end) of every window holding ts."""
    if window == "tumbling":
        s = ts // WINDOW * WINDOW
        return [(s, s + WINDOW)]
    if window == "sliding":  # 1000 every 500
        s = ts // 500 * 500
        return [(s - 500, s + 500), (s, s + 1000)]
    raise ValueError(window)


def grouped(window):
    """(key, start, end) -> ([left values], [right values])."""
    g = {}
    if window == "session":  # gap 100: [ts, ts + 100) windows that touch or overlap merge
        by_key = {}
        for side, recs in ((0, left_records()), (1, right_records())):
            for k, ts, v in recs:
                by_key.setdefault(k, []).append((ts, side, v))
        for k, recs in by_key.items():
            recs.sort()
            cur = None
            for ts, side, v in recs:
                if cur is None or ts > cur[1]:  # a gap: ts > end of the session so far
                    cur = [ts, ts + 100, [], []]
                    g[(k, id(cur))] = cur
                cur[1] = max(cur[1], ts + 100)
                cur[2 + side].append(v)
        return {(k, c[0], c[1]): (c[2], c[3]) for (k, _), c in g.items()}
    for side, recs in ((0, left_records()), (1, right_records())):
        for k, ts, v in recs:
            for s, e in windows_of(ts, window):
                g.setdefault((k, s, e), ([], []))[side].append(v)
    return g


def oracle(mode, window="tumbling", lower=-300, upper=200):
    lines = []
    if mode == "coprocess":
        c = {}
        for side, recs in ((0, left_records()), (1, right_records())):
            for k, ts, _ in recs:
                wend = (ts // WINDOW + 1) * WINDOW - 1
                c.setdefault((k, wend), [0, 0])[side] += 1
        lines = [f"{k} {w} {a} {b}" for (k, w), (a, b) in c.items()]
    elif mode == "cogroup":
        for (k, s, e), (lv, rv) in grouped(window).items():
            lines.append(f"{k} {s} {e} {len(lv)} {len(rv)} "
                         f"{','.join(map(str, sorted(lv)))}|{','.join(map(str, sorted(rv)))}")
    elif mode == "join":
        for (k, s, e), (lv, rv) in grouped(window).items():
            lines.extend(f"{k} {s} {e} {a} {b}" for a in lv for b in rv)
    elif mode == "interval":
        rights = {}
        for k, ts, v in right_records():
            rights.setdefault(k, []).append((ts, v))
        for k, lts, lv in left_records():
            for rts, rv in rights.get(k, []):
                if lts + lower <= rts <= lts + upper:
                    lines.append(f"{k} {lv} {rv} {max(lts, rts)}")
    return Counter(lines)


def normalize(mode, line):
    """cogroup lines carry the values in arrival order: sort them as the oracle does."""
    if mode != "cogroup":
        return line
    head, vals = line.rsplit(" ", 1)
    lv, rv = vals.split("|")
    srt = (lambda s: ",".join(map(str, sorted(int(x) for x in s.split(",")))) if s else "")
    return f"{head} {srt(lv)}|{srt(rv)}"


def read_output(out, mode):
    return Counter(normalize(mode, line) for line in read_part_lines(out))


def compare(got, want, what):
    missing = want - got
    extra = got - want
    check(not missing and not extra,
          f"{what}: {sum(missing.values())} lines missing (e.g. {list(missing)[:3]}), "
          f"{sum(extra.values())} unexpected (e.g. {list(extra)[:3]}) of {sum(want.values())}")


def args(out, mode, *more):
    return [os.path.join(TEST_PLUGINS, "joins.so"), "--output", out, "--mode", mode,
            "--left", str(N_LEFT), "--right", str(N_RIGHT), "--rate", str(RATE), *more]


def flag_args(window=None):
    return ["--window", window] if window else []


def run_plain(c, mode, window=None, bounds=None):
    """bounds: (lower, upper) of an interval join (default -300, 200)."""
    what = f"{mode} {window or ''}{bounds or ''}"
    out = os.path.join(c.dir, f"out-{mode}-{window}-{bounds}".replace(" ", ""))
    more = flag_args(window)
    if bounds:
        more += ["--lower", str(bounds[0]), "--upper", str(bounds[1])]
    jobid = c.submit("-p", "2", *args(out, mode, *more))
    job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
    check(job["state"] == "FINISHED", f"{what}: job ended {job['state']}: {job.get('message')}")
    want = oracle(mode, window or "tumbling", *(bounds or (-300, 200)))
    check(sum(want.values()) > 0, f"{what}: the reference is empty")
    compare(read_output(out, mode), want, what)
    print(f"{what}: {sum(want.values())} lines exactly as the reference")
    return jobid


def check_graph(c, jobid):
    """The REST job graph and `weir info` show both inputs of the two-input vertex."""
    info = json.loads(c.cli("info", "-p", "2", *args(os.path.join(c.dir, "x"), "coprocess"),
                            check_rc=0).stdout)
    op = [n for n in info["nodes"] if n["name"] == "op"][0]
    check([(i["node"], i["partitioning"]) for i in op["inputs"]] == [(0, "hash"), (1, "hash")],
          f"weir info: the operator's inputs: {op.get('inputs')}")
    job = c.job(jobid)
    nodes = job["graph"]["nodes"]
    op = [n for n in nodes if n["name"] == "op"][0]
    ins = op["inputs"]
    check(len(ins) == 2 and [nodes[i["node"]]["name"] for i in ins] == ["left", "right"],
          f"the operator's inputs in the REST graph: {ins}")
    edges = [e for e in job["graph"]["edges"] if e["target"] == 2]
    check(sorted(e["input"] for e in edges) == [0, 1], f"edges into the operator: {edges}")
    vx = [v for v in job["vertices"] if v["id"] == 2][0]
    check([i["input"] for i in vx["inputs"]] == [0, 1], f"vertex inputs: {vx.get('inputs')}")


def phase_plain():
    with Cluster("joins", tms=1, slots=8,
                 tm_conf={"pipeline.auto-watermark-interval": "50ms"}) as c:
        jobid = run_plain(c, "coprocess")
        check_graph(c, jobid)
        for window in ("tumbling", "session"):
            run_plain(c, "join", window)
        for window in ("tumbling", "sliding", "session"):
            run_plain(c, "cogroup", window)
        for bounds in ((-300, 200), (-500, -100), (0, 0)):  # around, only before, equal times
            run_plain(c, "interval", bounds=bounds)


def phase_kill(mode):
    with Cluster(f"joins-kill-{mode}", tms=2, slots=4, checkpoints="200ms",
                 tm_conf={"pipeline.auto-watermark-interval": "50ms"}) as c:
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "2", *args(out, mode))
        c.kill_taskmanager_midrun(jobid, what=f"the {mode} job (N_LEFT)")
        c.wait_finished(jobid, restored=True)
        ck = c.checkpoints(jobid)
        want = oracle(mode)
        compare(read_output(out, mode), want, f"{mode} after kill -9")
        print(f"{mode}: {sum(want.values())} lines exactly once after a kill -9 and "
              f"{ck['counts']['restored']} restore(s)")


def phase_savepoint(mode):
    with Cluster(f"joins-sp-{mode}", tms=2, slots=5, checkpoints="200ms", savepoints=True,
                 tm_conf={"pipeline.auto-watermark-interval": "50ms"}) as c:
        out = os.path.join(c.dir, "out")
        job1 = c.submit("-p", "2", *args(out, mode))
        c.wait_state(job1, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(job1, 1, timeout=60)  # the sources run about 4 s: stop early
        sp = c.stop_with_savepoint(job1)
        want = oracle(mode)
        first = sum(read_output(out, mode).values())
        check(0 < first < sum(want.values()),
              f"run 1 committed {first} lines: the stop must fall mid-stream")
        job2 = c.resume(sp, *args(out, mode), p=3)
        job = c.wait_state(job2, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        compare(read_output(out, mode), want, f"{mode} across the savepoint")
        print(f"{mode}: stopped at -p 2 with a savepoint after {first} lines, resumed at -p 3: "
              f"{sum(want.values())} lines exactly once")


def test():
    phase_plain()
    phase_kill("coprocess")
    phase_kill("interval")
    phase_savepoint("coprocess")
    phase_savepoint("join")


if __name__ == "__main__":
    run_test(test)
