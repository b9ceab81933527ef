"""End-to-end latency benchmark (bench/run.sh latency).

Job: bench/latency.so (bench/plugins/latency.c): a generator stamps every record with
CLOCK_REALTIME in microseconds -> rebalance -> a pass-through map -> a sink that reads
CLOCK_REALTIME again and keeps a histogram (one clock: all processes run on this machine). With
1 job manager + 2 task managers of 1 slot each at -p 2, about half the records cross task
managers (reported separately as "remote").

For each execution.buffer-timeout (the task managers' default, 0 ms, 1 ms; a fresh cluster each):
1. peak: the job without a rate limit, LAT_PEAK_EVENTS events (default 10,000,000): events / wall
   seconds (wall time includes the job's start and end, so the true peak is a bit higher);
2. the job at 50 % and 90 % of that peak for LAT_SECONDS seconds (default 10) each;
   the first LAT_WARMUP_SECONDS (default 1) are counted too (the histogram covers every record).
Prints, per buffer timeout and load, one line
  RESULT name=latency-<timeout>-<load> engine=weir events=N seconds=S cpu_seconds=C
         events_per_core_sec=R rate=... p50_us=... p99_us=... p999_us=... max_us=...
         remote_p50_us=... remote_p99_us=... remote_p999_us=...
and one peak line per buffer timeout. Usage: latency_bench.py RUNS (RUNS runs per load, the
median of each percentile is printed as <name>-median)."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import weirtest  # tests/lib, on PYTHONPATH (bench/run.sh)

PLUGIN = os.path.join(weirtest.BUILD, "bench", "latency.so")
PEAK_EVENTS = int(os.environ.get("LAT_PEAK_EVENTS", 10_000_000))
SECONDS = float(os.environ.get("LAT_SECONDS", 10))
TIMEOUTS = [t for t in os.environ.get("LAT_TIMEOUTS", "default,0ms,1ms").split(",") if t]
LOADS = [float(x) for x in os.environ.get("LAT_LOADS", "0.5,0.9").split(",") if x]


def read_hist(out_dir):
    """Merged histogram from every sink subtask: {bucket_low_us: (count, remote_count)}."""
    h = {}
    files = [f for f in os.listdir(out_dir) if f.startswith("latency-") and f.endswith(".txt")]
    if not files:
        raise SystemExit(f"latency bench: no histogram in {out_dir}")
    for name in files:
        with open(os.path.join(out_dir, name)) as f:
            for line in f:
                low, n, r = (int(x) for x in line.split())
                a, b = h.get(low, (0, 0))
                h[low] = (a + n, b + r)
    return h


def percentile(h, q, col):
    """Lower bound of the bucket holding the q-quantile (column 0: all records, 1: remote)."""
    total = sum(v[col] for v in h.values())
    if total == 0:
        return 0
    need = q * total
    seen = 0
    for low in sorted(h):
        seen += h[low][col]
        if seen >= need:
            return low
    return max(h)


def run_job(c, events, rate):
    out = tempfile.mkdtemp(prefix="lat-", dir=c.dir)
    pids = c.pids()
    cpu0 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    t0 = time.time()
    r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", c.address, "run", "-p", "2",
                        PLUGIN, "--events", str(events), "--rate", str(rate), "--output", out],
                       capture_output=True, text=True, timeout=3600)
    wall = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"latency bench: job failed: {r.stdout}{r.stderr}\n{c.log_tail()}")
    cpu = sum(weirtest.proc_cpu_seconds(p) for p in pids) - cpu0
    h = read_hist(out)
    shutil.rmtree(out, ignore_errors=True)
    got = sum(v[0] for v in h.values())
    if got != events:
        raise SystemExit(f"latency bench: the sinks saw {got} records, expected {events}")
    return wall, cpu, h


def fmt(h):
    return (f"p50_us={percentile(h, 0.5, 0)} p99_us={percentile(h, 0.99, 0)} "
            f"p999_us={percentile(h, 0.999, 0)} max_us={max(k for k, v in h.items() if v[0])} "
            f"remote_p50_us={percentile(h, 0.5, 1)} remote_p99_us={percentile(h, 0.99, 1)} "
            f"remote_p999_us={percentile(h, 0.999, 1)}")


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    for timeout in TIMEOUTS:
        tm_conf = {} if timeout == "default" else {"execution.buffer-timeout": timeout}
        label = "default" if timeout == "default" else timeout
        with weirtest.Cluster(f"latency-{label}", tms=2, slots=1, tm_conf=tm_conf) as c:
            wall, cpu, h = run_job(c, PEAK_EVENTS, 0)
            peak = PEAK_EVENTS / wall
            print(f"RESULT name=latency-{label}-peak engine=weir events={PEAK_EVENTS} seconds={wall:.3f} "
                  f"cpu_seconds={cpu:.3f} events_per_core_sec={PEAK_EVENTS / cpu:.0f} rate={peak:.0f} "
                  f"{fmt(h)}", flush=True)
            for load in LOADS:
                rate = int(peak * load)
                events = int(rate * SECONDS)
                per = []
                for _ in range(runs):
                    wall, cpu, h = run_job(c, events, rate)
                    p = (percentile(h, 0.5, 0), percentile(h, 0.99, 0), percentile(h, 0.999, 0))
                    per.append(p)
                    print(f"RESULT name=latency-{label}-{int(load * 100)}pct engine=weir events={events} "
                          f"seconds={wall:.3f} cpu_seconds={cpu:.3f} events_per_core_sec={events / cpu:.0f} "
                          f"rate={rate} {fmt(h)}", flush=True)
                print(f"RESULT name=latency-{label}-{int(load * 100)}pct-median engine=weir events={events} "
                      f"seconds={SECONDS:.3f} cpu_seconds=0 events_per_core_sec=0 rate={rate} "
                      f"p50_us={statistics.median(x[0] for x in per):.0f} "
                      f"p99_us={statistics.median(x[1] for x in per):.0f} "
                      f"p999_us={statistics.median(x[2] for x in per):.0f}", flush=True)


main()
