"""Bench harness: Flink's side of `bench/run.sh latency` and of `bench/run.sh keyed-count-10m`
(bench/flink LatencyJob, KeyedCountJob) does the work weir's side does.
- KeyedCountJob in a MiniCluster at parallelism 2 (RocksDB, exactly-once checkpoints every
  second): the final count of every key equals Python's count of the keys of weir's datagen
  (splitmix64(7 ^ i) mod K for i < N, connectors/datagen/datagen.c), computed here;
- LatencyJob (MiniCluster, -p 2, paced at 10,000 records/s) and weir's bench/latency.so (a weir
  cluster, -p 2, the same rate) write histograms that bench/latency_bench.py reads alike: one
  file per sink subtask, every record counted once, every bucket a lower bound of latency.c's
  buckets (exact below 128 us, then 64 per power of two), some records from the other source
  subtask (the rebalance), and Flink's paced run is not faster than its rate: the job's net runtime as Flink
  measures it (JobExecutionResult, printed by LatencyJob) is at least 90 % of events / rate (4 s).
  A bound that load can only help: the check it replaces (wall time minus a separate unpaced
  run's) failed in CI when the two JVM starts differed by seconds."""

import collections
import os
import re
import subprocess
import sys
import tempfile
import time

import flinktest
from weirtest import BUILD, Cluster, check, run_test

SRC = os.environ.get("WEIR_SRC") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(SRC, "bench"))
import latency_bench  # noqa: E402  (bench/latency_bench.py: read_hist, percentile)

M64 = (1 << 64) - 1
KC_EVENTS, KC_KEYS = 100_000, 20_000
LAT_EVENTS, LAT_RATE = 40_000, 10_000


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def check_hist(engine, out):
    names = sorted(os.listdir(out))
    check(names == ["latency-0.txt", "latency-1.txt"], f"{engine}: histogram files {names}")
    h = latency_bench.read_hist(out)
    total = sum(v[0] for v in h.values())
    remote = sum(v[1] for v in h.values())
    check(total == LAT_EVENTS, f"{engine}: {total} records in the histograms, expected {LAT_EVENTS}")
    check(0 < remote < total, f"{engine}: {remote} of {total} records from the other subtask")
    for low in h:
        check(low < 128 or low & ((1 << (low.bit_length() - 7)) - 1) == 0,
              f"{engine}: {low} us is not a bucket lower bound")
    print(f"{engine}: {total} records, {remote} remote, p50 {latency_bench.percentile(h, 0.5, 0)} us, "
          f"p99 {latency_bench.percentile(h, 0.99, 0)} us")


def main():
    # not BUILD/flink: 01_flink_generator builds there, and ctest -j2 may run both at once
    out_dir = os.path.join(BUILD, "flink-02")
    _, cp = flinktest.build(out_dir)

    with tempfile.TemporaryDirectory(prefix="weir-flink-kc-") as tmp:
        path = os.path.join(tmp, "counts")
        r = subprocess.run(["java", "-cp", cp, "weir.bench.KeyedCountJob", "--local", "--events",
                            str(KC_EVENTS), "--keys", str(KC_KEYS), "--parallelism", "2",
                            "--checkpoint-interval", "1000", "--output", path],
                           capture_output=True, text=True, timeout=600)
        check(r.returncode == 0, f"KeyedCountJob failed:\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
        check("EmbeddedRocksDBStateBackend" in r.stdout + r.stderr, "KeyedCountJob did not load RocksDB")
        with open(path) as f:
            got = {int(k): int(n) for k, n in (line.split() for line in f)}
    want = collections.Counter(splitmix64(7 ^ i) % KC_KEYS for i in range(KC_EVENTS))
    check(len(got) == len(want), f"KeyedCountJob: {len(got)} keys, expected {len(want)}")
    bad = [k for k in want if got.get(k) != want[k]]
    check(not bad, f"KeyedCountJob: {len(bad)} keys miscounted, e.g. key {bad[:1]}: "
                   f"{got.get(bad[0]) if bad else ''} vs {want[bad[0]] if bad else ''}")
    print(f"KeyedCountJob -p 2: {len(got)} keys, every count = Python's over {KC_EVENTS} events")

    with tempfile.TemporaryDirectory(prefix="weir-flink-lat-") as tmp:
        def latency_job(name, events, rate):
            out = os.path.join(tmp, name)
            os.mkdir(out)
            r = subprocess.run(["java", "-cp", cp, "weir.bench.LatencyJob", "--events", str(events),
                                "--rate", str(rate), "--parallelism", "2", "--buffer-timeout", "1",
                                "--output", out], capture_output=True, text=True, timeout=600)
            check(r.returncode == 0, f"LatencyJob failed:\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
            ms = re.findall(r"^net-runtime-ms=(\d+)$", r.stdout, re.M)
            check(len(ms) == 1, f"LatencyJob printed no net-runtime-ms line:\n{r.stdout[-2000:]}")
            return out, int(ms[0]) / 1000

        # Flink's net runtime of the job (no JVM or MiniCluster start): a paced run cannot be
        # faster than events / rate, and load only makes it slower
        out, run = latency_job("flink", LAT_EVENTS, LAT_RATE)
        paced = LAT_EVENTS / LAT_RATE
        check(run >= paced * 0.9, f"LatencyJob ran {run:.2f} s: not paced at {LAT_RATE}/s ({paced:.0f} s)")
        print(f"flink: paced run {run:.2f} s (Flink's net runtime)")
        check_hist("flink", out)
        with Cluster("flink-latency", tms=2, slots=1) as c:
            out = os.path.join(c.dir, "weir-lat")
            os.mkdir(out)
            jobid = c.submit("-p", "2", os.path.join(BUILD, "bench", "latency.so"), "--events",
                             str(LAT_EVENTS), "--rate", str(LAT_RATE), "--output", out)
            job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
            check(job["state"] == "FINISHED", f"weir latency job ended {job['state']}")
            check_hist("weir", out)


run_test(main)
