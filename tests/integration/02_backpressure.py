"""Backpressure: an unbounded datagen (as fast as it can) feeds, across task managers, a sink that
takes at most 2,000 records/s per subtask (-p 2: 4,000/s in all). For 30 s:
- every weir process's RSS stays under RSS_BOUND_MIB (stated bound; the test build carries ASan's
  shadow memory) and grows by less than 32 MiB between second 10 and second 30;
- the source's rate falls to the sink's rate: over the last 20 s the source emitted within 10% of
  what the sink consumed, and at most 4,400 records/s;
- records in flight (source out - sink in) stay bounded by the credits: under 200,000."""

import os
import time

from weirtest import TEST_PLUGINS, Cluster, check, proc_rss_kib, run_test

RSS_BOUND_MIB = 600
SINK_RATE = 2000
DURATION = 30


def totals(job):
    src = sink = 0
    for v in job["vertices"]:
        for st in v["subtasks"]:
            if "datagen" in v["name"]:
                src += st["metrics"]["records_out"]
            if "slow-sink" in v["name"]:
                sink += st["metrics"]["records_in"]
    return src, sink


def test():
    with Cluster("backpressure", tms=2, slots=2) as c:
        jobid = c.submit("-p", "2", os.path.join(TEST_PLUGINS, "slowsink.so"), "--sink-rate", str(SINK_RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        time.sleep(2)
        samples = []
        rss_at = {}
        t0 = time.time()
        while time.time() - t0 < DURATION:
            job = c.job(jobid)
            check(job["state"] == "RUNNING", f"job left RUNNING: {job['state']} {job.get('message')}")
            src, sink = totals(job)
            rss = {pid: proc_rss_kib(pid) for pid in c.pids()}
            for pid, kib in rss.items():
                check(kib is not None and kib < RSS_BOUND_MIB * 1024,
                      f"process {pid} RSS {kib} KiB exceeds {RSS_BOUND_MIB} MiB")
            elapsed = time.time() - t0
            samples.append((elapsed, src, sink))
            if 10 <= elapsed < 11 and not rss_at:
                rss_at = dict(rss)
            check(src - sink < 200_000, f"{src - sink} records in flight (source {src}, sink {sink})")
            time.sleep(1)
        for pid, kib in rss_at.items():
            now = proc_rss_kib(pid)
            check(now - kib < 32 * 1024, f"process {pid} RSS grew from {kib} to {now} KiB in 20 s")
        # Rates over the last 20 s.
        first = next(s for s in samples if s[0] >= DURATION - 20)
        last = samples[-1]
        dt = last[0] - first[0]
        src_rate = (last[1] - first[1]) / dt
        sink_rate = (last[2] - first[2]) / dt
        print(f"source {src_rate:.0f} rec/s, sink {sink_rate:.0f} rec/s over {dt:.1f} s; "
              f"max RSS {max(proc_rss_kib(p) or 0 for p in c.pids()) / 1024:.0f} MiB")
        check(sink_rate > 0, "sink consumed nothing")
        check(abs(src_rate - sink_rate) <= 0.1 * sink_rate,
              f"source rate {src_rate:.0f}/s did not fall to the sink rate {sink_rate:.0f}/s")
        check(src_rate <= 2 * SINK_RATE * 1.1, f"source rate {src_rate:.0f}/s above the sinks' capacity")
        c.cli("cancel", jobid, check_rc=0)
        job = c.wait_state(jobid, {"CANCELED", "FAILED", "FINISHED"}, timeout=60)
        check(job["state"] == "CANCELED", f"job ended {job['state']} after cancel")


run_test(test)
