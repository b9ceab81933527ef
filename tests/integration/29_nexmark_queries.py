"""Integration: the Nexmark event-time queries of nexmark.so (q5, q7, q11) against the
independent Python reference (tests/nexmark_ref/queries.py, written from the nexmark/nexmark
SQL, reading the JSON events file that `--query events` writes for the same options).

On a real cluster (1 job manager, 2 task managers, checkpoints every 300 ms), for each query:
- in order (-p 2) and out of order (-p 3, --out-of-order-group within the 4 s bound): the
  committed JSON lines of --output equal the reference's rows exactly (as multisets), every line
  has exactly the reference SELECT's keys, and nothing is written to --late-output (no event is
  late under the 4 s watermark);
- with late events (--late-fraction 0.03, -p 2), allowed lateness off: the late events the query
  dropped are in --late-output (each once, each one of the shifted events, at least one); the
  output equals the reference over the events minus those, exactly;
- q11 with --lateness 12000 (more than the largest shift, so no event is dropped): late firings
  re-emit sessions; after removing the lines superseded by a later firing (same bidder, interval
  inside another line's, count not larger), the output equals the reference over ALL events;
- bad option combinations are refused with one line naming the option.
The reference's rows are also checked to be non-trivial (several windows, ties or boundary
cases where the query has them), so a query that emitted nothing would not pass."""

import json
import os
import re
import sys
from collections import Counter

from weirtest import EXAMPLES, Cluster, check, run_test

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nexmark_ref"))
import gen  # noqa: E402  (tests/nexmark_ref/gen.py: which events are shifted late)
import queries  # noqa: E402  (tests/nexmark_ref/queries.py)

KEYS = {"q5": {"auction", "num"}, "q7": {"auction", "price", "bidder", "dateTime", "extra"},
        "q11": {"bidder", "bid_count", "starttime", "endtime"}}


def read_lines(d):
    """Committed JSON lines of an exactly-once file sink directory (missing dir: none)."""
    if not os.path.isdir(d):
        return []
    out = []
    for n in sorted(os.listdir(d)):
        check(not n.startswith("."), f"{d}: in-progress file {n} left behind")
        check(re.fullmatch(r"part-[0-9a-f-]+-\d+-\d+", n), f"unexpected file {n} in {d}")
        with open(os.path.join(d, n), encoding="utf-8") as f:
            for line in f:
                check(line.endswith("\n"), f"{n}: unterminated line {line[:80]!r}")
                out.append(json.loads(line))
    return out


def canon(rows):
    return Counter(json.dumps(r, sort_keys=True, separators=(",", ":")) for r in rows)


def compare(what, got, want):
    g, w = canon(got), canon(want)
    if g != w:
        missing, extra = w - g, g - w
        raise AssertionError(f"{what}: {sum(missing.values())} reference rows missing, "
                             f"{sum(extra.values())} unexpected; e.g. missing {list(missing)[:3]}, "
                             f"unexpected {list(extra)[:3]}")


def opts(n, rate, group, late):
    a = ["--events", str(n), "--events-per-second", str(rate)]
    if group != 1:
        a += ["--out-of-order-group", str(group)]
    if late:
        a += ["--late-fraction", str(late)]
    return a


def run_job(c, name, p, args):
    jobid = c.submit("-p", str(p), os.path.join(EXAMPLES, "nexmark.so"), *args)
    job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
    check(job["state"] == "FINISHED", f"{name}: job ended {job['state']}: {job.get('message')}")


EVENTS_CACHE = {}


def events_of(c, n, rate, group, late):
    """The events file of `--query events` for these options (run once per option set)."""
    k = (n, rate, group, late)
    if k not in EVENTS_CACHE:
        d = os.path.join(c.dir, f"events-{len(EVENTS_CACHE)}")
        run_job(c, "events", 2, ["--query", "events", "--output", d] + opts(n, rate, group, late))
        EVENTS_CACHE[k] = queries.read_events([d])
        check(len(EVENTS_CACHE[k]) == n, f"events: {len(EVENTS_CACHE[k])} written, expected {n}")
    return EVENTS_CACHE[k]


def shifted(n, rate, group, late):
    """Canonical JSON of the events the generator moved back (late), from gen.py."""
    cfg = gen.Config(rate, group, late)
    out = set()
    for i in range(n):
        if cfg.late_shift(cfg.adjusted(i)):
            out.add(json.dumps(gen.event(cfg, i), sort_keys=True, separators=(",", ":")))
    return out


def supersede(rows):
    """q11 with late firings: drop every line contained in another of the same bidder (interval
    inside, count not larger); for equal intervals keep the largest count once."""
    best = {}
    for r in rows:
        k = (r["bidder"], r["starttime"], r["endtime"])
        best[k] = max(best.get(k, 0), r["bid_count"])
    by_bidder = {}
    for (b, s, e), n in best.items():
        by_bidder.setdefault(b, []).append((s, e, n))
    out = []
    for b, lst in by_bidder.items():
        for s, e, n in lst:
            if not any((s2 <= s and e <= e2 and (s2, e2) != (s, e)) for s2, e2, _ in lst):
                out.append({"bidder": b, "bid_count": n, "starttime": s, "endtime": e})
    return out


def run(c, query, name, p, n, rate, group=1, late=0.0, lateness=None):
    out = os.path.join(c.dir, f"{query}-{name}")
    late_out = out + "-late"
    args = ["--query", query, "--output", out, "--late-output", late_out] + opts(n, rate, group, late)
    if lateness is not None:
        args += ["--lateness", str(lateness)]
    run_job(c, f"{query} {name}", p, args)
    got = read_lines(out)
    for r in got:
        check(set(r) == KEYS[query], f"{query} {name}: line with keys {sorted(r)}, expected {sorted(KEYS[query])}")
    events = events_of(c, n, rate, group, late)
    dropped = read_lines(late_out)
    dropped_c = canon(dropped)
    check(all(v == 1 for v in dropped_c.values()), f"{query} {name}: a late event written twice")
    if not late or lateness:
        check(not dropped, f"{query} {name}: {len(dropped)} events dropped as late, e.g. {dropped[:1]}")
    else:
        check(dropped, f"{query} {name}: no event was late with --late-fraction {late}")
        bad = set(dropped_c) - shifted(n, rate, group, late)
        check(not bad, f"{query} {name}: dropped events that were not shifted late: {list(bad)[:2]}")
    gone = set(dropped_c)
    kept = [e for e in events if json.dumps(e, sort_keys=True, separators=(",", ":")) not in gone]
    want = getattr(queries, query)(kept)
    check(len(want) > 20, f"{query} {name}: the reference has only {len(want)} rows; pick more events")
    firings = len(got)
    if lateness:
        got = supersede(got)
    compare(f"{query} {name}", got, want)
    print(f"{query} {name}: -p {p}, {n} events at {rate}/s, group {group}, late {late}: "
          f"{len(want)} rows identical to the reference ({firings} lines written, "
          f"{len(dropped)} late events dropped)")
    return want


def refused(c, args, pattern):
    r = c.cli("run", os.path.join(EXAMPLES, "nexmark.so"), *args, timeout=60)
    text = r.stdout + r.stderr
    check(r.returncode != 0, f"{args} was accepted: {text}")
    check(re.search(pattern, text), f"{args}: no line matching {pattern!r} in: {text}")


def test():
    with Cluster("nexmark-queries", tms=2, slots=3, checkpoints="300ms",
                 tm_conf={"pipeline.auto-watermark-interval": "50ms"}) as c:
        # q5: 10 s windows every 2 s; 30 s of event time at 1000 events/s
        rows = run(c, "q5", "in-order", 2, 30000, 1000.0)
        check(any(v > 1 for v in Counter(r["num"] for r in rows).values()) or len(rows) > 15,
              "q5: expected hot items in every window")
        run(c, "q5", "out-of-order", 3, 30000, 1000.0, group=3000)
        run(c, "q5", "late", 2, 30000, 1000.0, late=0.03)
        # q7: 10 s tumbling; 100 events/s makes prices tie at the max and bids at window ends
        rows = run(c, "q7", "in-order", 2, 12000, 100.0)
        check(any(r["dateTime"] % 10000 == 0 for r in rows),
              "q7: no bid at exactly a window end in the reference: the BETWEEN case is untested")
        run(c, "q7", "out-of-order", 3, 12000, 100.0, group=300)
        run(c, "q7", "late", 2, 12000, 100.0, late=0.03)
        # q11: 10 s session gap; 200 events/s gives many sessions per bidder
        rows = run(c, "q11", "in-order", 2, 20000, 200.0)
        run(c, "q11", "out-of-order", 3, 20000, 200.0, group=700)
        run(c, "q11", "late", 2, 20000, 200.0, late=0.03)
        run(c, "q11", "late-lateness", 2, 20000, 200.0, late=0.03, lateness=12000)
        out = os.path.join(c.dir, "never")
        refused(c, ["--query", "q5", "--events", "10", "--lateness", "100"],
                r"--lateness is not supported by q5")
        refused(c, ["--query", "q11", "--events", "10", "--lateness", "-1"], r"bad --lateness '-1'")
        refused(c, ["--query", "q1", "--events", "10", "--late-output", out],
                r"--late-output is supported by the windowed queries only")
        refused(c, ["--query", "q1", "--events", "10", "--output", out], r"--output is not supported by q1")
        refused(c, ["--query", "q9", "--events", "10"], r"unknown query 'q9'")


run_test(test)
