"""Chaos: event-time windows under kill -9 (issue 12, "Windows under failure").

Three windowed jobs of tests/plugins/windows.so run at the same time on one cluster of three task
managers (checkpoints every 200 ms), each at -p 2 with allowed lateness on: tumbling 1 s
(lateness 1 s, 3% of the records late within it), sliding 4 s every 1 s (lateness 2 s, 3% late
within it) and sessions with a 500 ms gap (lateness 1 s; no late records: a late merge would
emit superseded sessions, see 27_windows.py). While they run, this script kills a random task
manager hosting one of them with kill -9 at a random moment, several times (each kill after
every running job completed a checkpoint newer than the previous kill, so the jobs make progress
between two faults), and starts a replacement with the same configuration each time. No "very
late" records: after a restore the window operator's watermark starts at INT64_MIN until every
input channel delivered one, so whether such a record is late would depend on timing (as in
Flink).

Checks, per job: it FINISHES; the committed output of its exactly-once file sink has, for every
window, a last firing (the highest count) equal to the Python reference of 27_windows.py (from
the plugin's documented key and timestamp formulas, not from weir's output): every window there,
no other, every result stamped end-1, the late side output empty; and the same final values as
a run of the same three jobs without failures (a second cluster, no kills). The kills restored
the jobs (the restore counts add up to at least the number of kills). Sessions (no late
records): every session window fires exactly once with its final value, with kills as without
(a session that fired before a failure and is kept for the allowed lateness does not fire again
after the restore, whose watermark restarts at INT64_MIN).

Bounded for CI: 30,000 events per job at 2,000 records/s, 4 kills (with WEIR_CHAOS_SIZE=large:
120,000 events at 3,000/s, 12 kills). Prints the seed (WEIR_TEST_CHAOS_SEED replays the kill
schedule)."""

import importlib.util
import os
import random
import time
import types

from chaoslib import latest_completed
from weirtest import SRC, TEST_PLUGINS, Cluster, check, run_test

LARGE = os.environ.get("WEIR_CHAOS_SIZE") == "large"
EVENTS = 120_000 if LARGE else 30_000
RATE = 3000 if LARGE else 2000  # records/s per job over its two generator subtasks
KILLS = 12 if LARGE else 4
MIN_KILLS = 8 if LARGE else 3
# (kind, allowed lateness ms, late-within records per million)
JOBS = [("tumbling", 1000, 30000), ("sliding", 2000, 30000), ("session", 1000, 0)]


def load_reference():
    """The window reference of tests/integration/27_windows.py, for EVENTS events."""
    spec = importlib.util.spec_from_file_location(
        "windows27", os.path.join(SRC, "tests", "integration", "27_windows.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.EVENTS = EVENTS
    return mod


def submit_all(c):
    jobs = {}
    for kind, lateness, late in JOBS:
        d = os.path.join(c.dir, kind)
        jobs[kind] = (c.submit("-p", "2", os.path.join(TEST_PLUGINS, "windows.so"),
                               "--output", os.path.join(d, "out"),
                               "--late-output", os.path.join(d, "late"), "--kind", kind,
                               "--lateness", str(lateness), "--very-late", "0", "--late",
                               str(late), "--events", str(EVENTS), "--rate", str(RATE)), d)
    for jobid, _ in jobs.values():
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
    return jobs


def running(c, jobs):
    return [jobid for jobid, _ in jobs.values() if c.job(jobid)["state"] in ("RUNNING",
                                                                             "RESTARTING")]


def inject_kills(c, jobs, rng):
    """Up to KILLS kills; returns how many happened before the jobs ended."""
    last = {jobid: 0 for jobid, _ in jobs.values()}
    kills = 0
    for k in range(KILLS):
        deadline = time.time() + 120
        while time.time() < deadline:  # progress: a newer checkpoint of every running job
            live = running(c, jobs)
            if all((latest_completed(c, j) or 0) > last[j] for j in live):
                break
            time.sleep(0.1)
        live = running(c, jobs)
        if not live:
            break
        for j in live:
            last[j] = latest_completed(c, j) or 0
        time.sleep(rng.uniform(0.2, 1.5))
        hosts = set()
        for j in running(c, jobs):
            hosts |= c.job_taskmanagers(j)
        hosts = sorted(h for h in hosts if h.startswith("tm-"))
        if not hosts:
            break
        victim = rng.choice(hosts)
        i = int(victim.split("-")[1])
        print(f"kill {k + 1}: kill -9 {victim} (checkpoints {sorted(last.values())})", flush=True)
        c.kill9(c.tms[i])
        kills += 1
        time.sleep(rng.uniform(0.1, 1.0))
        c.start_taskmanager(index=i)
    return kills


def finish(c, jobs, what):
    for kind, (jobid, _) in jobs.items():
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=600 if LARGE else 240)
        check(job["state"] == "FINISHED", f"{what} {kind}: job ended {job['state']}: "
                                          f"{job.get('message')}")


def test():
    seed = int(os.environ.get("WEIR_TEST_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"seed {seed}: {EVENTS} events per job, {KILLS} kills", flush=True)
    ref = load_reference()
    tm_conf = {"pipeline.auto-watermark-interval": "50ms"}
    with Cluster("window-chaos", tms=3, slots=4, checkpoints="200ms", tm_conf=tm_conf) as c:
        jobs = submit_all(c)
        kills = inject_kills(c, jobs, rng)
        finish(c, jobs, "chaos")
        check(kills >= MIN_KILLS, f"only {kills} kills happened before the jobs finished: "
                                  f"raise EVENTS")
        restored = {kind: c.checkpoints(jobid)["counts"]["restored"]
                    for kind, (jobid, _) in jobs.items()}
        check(sum(restored.values()) >= kills,
              f"{kills} kills but only {restored} restores")
        chaos = {}
        for kind, lateness, late in JOBS:
            what = f"chaos {kind} lateness {lateness}"
            n, firings, nlate = ref.check_output(types.SimpleNamespace(dir=jobs[kind][1]), kind,
                                                 0, late, what)
            check(nlate == 0, f"{what}: the reference has late records")
            chaos[kind] = ref.final_values(os.path.join(jobs[kind][1], "out"), what)[0]
            if not late:  # no late record: a window fires once, never before it is complete
                check(firings == n, f"{what}: {firings} firings of {n} windows")
                for line in ref.read_dir(os.path.join(jobs[kind][1], "out")):
                    key, start, end, cnt, total, _ = line.split()
                    check((int(cnt), int(total)) == chaos[kind][(key, int(start), int(end))],
                          f"{what}: a firing with a partial value: {line}")
            print(f"{what}: {n} windows with the reference's final values ({firings} firings), "
                  f"{restored[kind]} restores", flush=True)
    with Cluster("window-nofault", tms=3, slots=4, checkpoints="200ms", tm_conf=tm_conf) as c:
        jobs = submit_all(c)
        finish(c, jobs, "failure-free")
        for kind, lateness, late in JOBS:
            what = f"failure-free {kind} lateness {lateness}"
            calm, firings = ref.final_values(os.path.join(jobs[kind][1], "out"), what)
            if not late:
                check(firings == len(calm), f"{what}: {firings} firings of {len(calm)} windows")
            got = chaos[kind]
            diff = sorted(w for w in set(calm) | set(got) if calm.get(w) != got.get(w))
            check(not diff, f"{kind}: {len(diff)} windows differ between the run with kills and "
                            f"the run without, e.g. "
                            f"{[(w, got.get(w), calm.get(w)) for w in diff[:3]]}")
            print(f"{kind}: the {len(calm)} windows of the run with {kills} kills equal those of "
                  f"the run without failures", flush=True)


run_test(test)
