"""Integration: `nexmark.so --query events` against the independent Python reference generator
(tests/nexmark_ref/gen.py). On a real cluster (1 job manager, 2 task managers):
- at -p 1 (defaults), -p 3 (3,000 events/s of event time, out-of-order groups of 1,000) and -p 2
  (2% late events) the committed JSON lines, parsed and dumped canonically, sorted, equal the
  reference's events for positions [0, N) exactly (so the events are the same whatever -p);
- the per-position timestamp rule: the event at position i is event number
  a(i) = i // G * G + (i * 953) % G, and its dateTime is 2024-01-01T00:00:00Z +
  trunc(a(i) * 1e6 / R) // 1000 ms (late events: 5,000..9,999 ms less), computed here;
- out-of-orderness: in position order and in each sink subtask's files (forward from its source subtask: its emission order) the
  largest dateTime so far minus dateTime is at most 4,000 ms, except for the late events, which
  exist and are behind a 4 s watermark;
- exactly-once under failover: a -p 3 run throttled to 10,000 events/s, checkpointing every
  300 ms, whose task manager is killed (kill -9) after a completed checkpoint and started again,
  still writes each event exactly once (the same comparison);
- bad options are refused with one line naming the option."""

import json
import os
import re
import sys

from weirtest import EXAMPLES, Cluster, check, run_test

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nexmark_ref"))
import gen  # noqa: E402  (tests/nexmark_ref/gen.py)

BASE = 1704067200000
BOUND_MS = 4000


def read_output(out):
    """{subtask: [event dict, ...] in that subtask's emission order} from committed part files."""
    names = os.listdir(out)
    hidden = [n for n in names if n.startswith(".")]
    check(not hidden, f"in-progress files left behind: {hidden}")
    files = {}
    for n in names:
        m = re.fullmatch(r"part-[0-9a-f-]+-(\d+)-(\d+)", n)
        check(m is not None, f"unexpected file {n} in {out}")
        files.setdefault(int(m.group(1)), []).append((int(m.group(2)), n))
    per_subtask = {}
    for st, parts in files.items():
        evs = []
        for _, n in sorted(parts):
            with open(os.path.join(out, n), encoding="utf-8") as f:
                for line in f:
                    check(line.endswith("\n"), f"{n}: unterminated line {line[:80]!r}")
                    evs.append(json.loads(line))
        per_subtask[st] = evs
    return per_subtask


def disorder(evs):
    """Events whose dateTime is more than BOUND_MS behind the largest dateTime before them."""
    late, top = [], None
    for e in evs:
        if top is not None and top - e["dateTime"] > BOUND_MS:
            late.append(e)
        top = e["dateTime"] if top is None else max(top, e["dateTime"])
    return late


def canon(evs):
    return sorted(json.dumps(e, sort_keys=True, separators=(",", ":")) for e in evs)


def run(c, name, p, n, rate=10000.0, group=1, late=0.0, wall_rate=None, during=None):
    out = os.path.join(c.dir, name)
    args = ["--query", "events", "--events", str(n), "--output", out]
    if rate != 10000.0:
        args += ["--events-per-second", str(rate)]
    if group != 1:
        args += ["--out-of-order-group", str(group)]
    if late:
        args += ["--late-fraction", str(late)]
    if wall_rate:
        args += ["--rate", str(wall_rate)]
    jobid = c.submit("-p", str(p), os.path.join(EXAMPLES, "nexmark.so"), *args)
    if during:
        during(jobid)
    job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
    check(job["state"] == "FINISHED", f"{name}: job ended {job['state']}: {job.get('message')}")
    if during:
        check(job["restarts"] >= 1, f"{name}: the job did not restart after the kill ({job['restarts']} restarts)")
    per_subtask = read_output(out)
    got = [e for evs in per_subtask.values() for e in evs]
    check(len(got) == n, f"{name}: {len(got)} events written, expected {n}")

    ref = gen.events(0, n, rate, group, late)
    got_c, ref_c = canon(got), canon(ref)
    if got_c != ref_c:
        diff = next(i for i, (a, b) in enumerate(zip(got_c, ref_c)) if a != b)
        raise AssertionError(f"{name}: events differ from the reference; first sorted difference:\n"
                             f"  weir: {got_c[diff]}\n  ref:  {ref_c[diff]}")
    kinds = {k: sum(1 for e in ref if e["type"] == k) for k in ("person", "auction", "bid")}

    # The timestamp rule per position, computed here.
    delay_us = 1e6 / rate
    n_late = 0
    for i, e in enumerate(ref):
        a = i // group * group + (i * 953) % group
        on_time = BASE + int(a * delay_us) // 1000
        shift = on_time - e["dateTime"]
        if shift:
            check(late > 0 and 5000 <= shift < 10000, f"{name}: position {i} dateTime {e['dateTime']}, rule says {on_time}")
            n_late += 1
        if e["type"] == "person":
            check(e["id"] == 1000 + a // 50, f"{name}: person at position {i} has id {e['id']}")
        if e["type"] == "auction":
            check(e["expires"] > e["dateTime"], f"{name}: auction at {i} expires before it starts")

    # Out-of-orderness: position order (reference) and each subtask's emission order (weir).
    behind = disorder(ref)
    if late:
        check(n_late > 0.01 * n and n_late < 0.03 * n, f"{name}: {n_late} late events of {n}")
        check(len(behind) > 0.5 * n_late, f"{name}: only {len(behind)} of {n_late} late events are behind a 4 s watermark")
        for st, evs in per_subtask.items():
            check(disorder(evs), f"{name}: subtask {st} wrote no event behind a 4 s watermark")
    else:
        check(n_late == 0, f"{name}: {n_late} shifted events without --late-fraction")
        check(not behind, f"{name}: {len(behind)} events more than 4 s out of order in position order")
        for st, evs in per_subtask.items():
            bad = disorder(evs)
            check(not bad, f"{name}: subtask {st}: {len(bad)} events more than 4 s out of order, first {bad[:1]}")
    spread = max(e["dateTime"] for e in ref) - min(e["dateTime"] for e in ref)
    print(f"{name}: -p {p}, {n} events {kinds} in {len(per_subtask)} subtask(s), event-time span {spread} ms, "
          f"{n_late} late ({len(behind)} behind a 4 s watermark): identical to the reference")


def kill_one(c):
    """After a completed checkpoint, kill -9 a task manager of the job and start it again."""
    def during(jobid):
        c.wait_checkpoints(jobid, 1, timeout=60)
        victim = sorted(c.job_taskmanagers(jobid))[0]
        i = int(victim.split("-")[1])
        c.kill9(c.tms[i])
        c.start_taskmanager(index=i)
        print(f"killed and restarted {victim} after {c.checkpoints(jobid)['counts']['completed']} checkpoint(s)")
    return during


def refused(c, args, pattern):
    r = c.cli("run", os.path.join(EXAMPLES, "nexmark.so"), *args, timeout=60)
    text = r.stdout + r.stderr
    check(r.returncode != 0, f"{args} was accepted: {text}")
    check(re.search(pattern, text), f"{args}: no line matching {pattern!r} in: {text}")


def test():
    with Cluster("nexmark-events", tms=2, slots=3, checkpoints="300ms") as c:
        run(c, "default-p1", 1, 10000)
        run(c, "ooo-p3", 3, 30000, rate=3000.0, group=1000)
        run(c, "late-p2", 2, 20000, late=0.02)
        run(c, "failover-p3", 3, 40000, group=500, wall_rate=10000, during=kill_one(c))
        out = os.path.join(c.dir, "never")
        refused(c, ["--query", "events", "--events", "10", "--output", out, "--out-of-order-group", "50000"],
                r"--out-of-order-group 50000 .* more than the 4000 ms out-of-orderness bound")
        refused(c, ["--query", "events", "--events", "10", "--output", out, "--late-fraction", "1.5"],
                r"bad --late-fraction '1\.5'")
        refused(c, ["--query", "events", "--events", "10"], r"--query events needs --output DIR")


run_test(test)
