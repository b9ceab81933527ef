"""End-to-end latency benchmark, weir beside Apache Flink 2.3.0 (bench/run.sh latency).

Job (both engines, the same shape): a generator stamps every record with CLOCK_REALTIME in
microseconds -> rebalance -> a pass-through map -> a sink that reads CLOCK_REALTIME again and keeps
a histogram (one clock: all processes run on this machine). weir: bench/latency.so
(bench/plugins/latency.c); Flink: weir.bench.LatencyJob (bench/flink), the same histogram buckets
and the same per-subtask files, merged here by the same code. With 1 job manager + 2 task
managers of 1 slot each at -p 2 (both engines), about half the records cross task managers
(reported separately as "remote").

For each execution.buffer-timeout (the engine's default -- weir 5 ms, Flink 100 ms --, 0 ms,
1 ms; a fresh weir cluster each, weir's set on its task managers; one Flink cluster for the whole
run, the timeout set by the job: env.setBufferTimeout), weir and Flink alternately:
1. peak, per engine: the job without a rate limit, LAT_PEAK_EVENTS events (default 10,000,000),
   divided by the time its records flowed: on weir its wall seconds minus those of the same job
   with 1,000 events run just before (a job's start and end, about 0.2 s); on Flink the span
   from the first subtask RUNNING to the last FINISHED (Flink's REST subtasktimes: submission,
   slot allocation and deployment take 1-3 s here and vary from job to job, so a 1,000-event
   job does not measure them);
2. the job at 50 % and 90 % of that engine's own peak for LAT_SECONDS seconds (default 10)
   each, RUNS runs per engine alternating weir, Flink, weir, ...; every record is counted (the
   first second too).
Before the first measured Flink job, one unmeasured Flink job per buffer timeout (LAT_PEAK_EVENTS
unthrottled each: class loading and JIT of Flink's code, as on a long-running cluster; with one
job of 2,000,000 or 10,000,000 events first, Flink's measured peak still rose from setting to
setting in either order of the settings, e.g. 1.66 -> 2.49 -> 3.79 M/s).
Prints, per engine, buffer timeout and load, one line
  RESULT name=latency-<timeout>-<load> engine=weir|flink events=N seconds=S cpu_seconds=C
         events_per_core_sec=R rate=... p50_us=... p99_us=... p999_us=... max_us=...
         remote_p50_us=... remote_p99_us=... remote_p999_us=...
one peak line per engine and buffer timeout, the median of each percentile as <name>-median,
and at the end a table: engine, timeout, peak, load, p50, p99, p99.9, max (medians).
Usage: latency_bench.py RUNS. LAT_ENGINES (default "weir,flink"): "weir" runs weir alone (no
Flink needed); Flink needs FLINK_JAR (bench/run.sh builds it) and the distribution
(bench/flink/setup.sh). CPU: weir's job manager and task managers; Flink's three JVMs."""

import contextlib
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
STARTUP_EVENTS = 1000  # a job this small measures weir's job start and end (see peak)


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


def run_weir(c, events, rate):
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
    return wall, cpu, collect(out, events, "weir")


def collect(out, events, engine):
    h = read_hist(out)
    shutil.rmtree(out, ignore_errors=True)
    got = sum(v[0] for v in h.values())
    if got != events:
        raise SystemExit(f"latency bench: {engine}'s sinks saw {got} records, expected {events}")
    return h


# Flink's execution.buffer-timeout per setting: -1 keeps the cluster's (Flink's default, 100 ms).
FLINK_TIMEOUT_MS = {"default": -1, "0ms": 0, "1ms": 1}
DEFAULT_TIMEOUT = {"weir": "5 ms", "flink": "100 ms"}


def run_flink(fc, events, rate, timeout):
    """@returns (wall seconds, CPU seconds, histogram, seconds the job's tasks ran)."""
    out = tempfile.mkdtemp(prefix="lat-", dir=fc.dir)
    cpu0 = fc.cpu_seconds()
    jobid, wall = fc.run_job(["--events", str(events), "--rate", str(rate), "--output", out,
                              "--parallelism", "2", "--buffer-timeout", str(FLINK_TIMEOUT_MS[timeout])],
                             entry="weir.bench.LatencyJob")
    cpu = fc.cpu_seconds() - cpu0
    return wall, cpu, collect(out, events, "flink"), fc.running_seconds(jobid)


def fmt(h):
    return (f"p50_us={percentile(h, 0.5, 0)} p99_us={percentile(h, 0.99, 0)} "
            f"p999_us={percentile(h, 0.999, 0)} max_us={max(k for k, v in h.items() if v[0])} "
            f"remote_p50_us={percentile(h, 0.5, 1)} remote_p99_us={percentile(h, 0.99, 1)} "
            f"remote_p999_us={percentile(h, 0.999, 1)}")


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    engines = [e for e in os.environ.get("LAT_ENGINES", "weir,flink").split(",") if e]
    for e in engines:
        if e not in ("weir", "flink"):
            raise SystemExit(f"latency bench: LAT_ENGINES: unknown engine {e!r} (weir, flink)")
    for t in TIMEOUTS:
        if "flink" in engines and t not in FLINK_TIMEOUT_MS:
            raise SystemExit(f"latency bench: LAT_TIMEOUTS: {t!r} is not one of "
                             f"{', '.join(FLINK_TIMEOUT_MS)} (Flink's side knows only these)")
    with contextlib.ExitStack() as stack:
        fc = None
        if "flink" in engines:
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "flink"))
            import flinkcluster  # bench/flink

            jar = os.environ.get("FLINK_JAR") or os.path.expanduser(
                "~/.cache/weir/flink/target/weir-flink-nexmark-1.0.jar")
            if not os.path.exists(jar):
                raise SystemExit(f"latency bench: no Flink job jar at {jar} (run: bench/flink/build.sh)")
            fc = stack.enter_context(flinkcluster.FlinkCluster(
                os.path.join(os.environ.get("WEIR_TEST_TMP") or "/tmp", f"weir-bench-flink-{os.getpid()}"),
                jar, tms=2, checkpoint_interval_ms=0))
            for t in TIMEOUTS:  # unmeasured: class loading and JIT, each setting's paths
                run_flink(fc, PEAK_EVENTS, 0, t)
        table = []
        for timeout in TIMEOUTS:
            label = "default" if timeout == "default" else timeout
            with contextlib.ExitStack() as per_timeout:
                c = None
                if "weir" in engines:
                    tm_conf = {} if timeout == "default" else {"execution.buffer-timeout": timeout}
                    c = per_timeout.enter_context(weirtest.Cluster(f"latency-{label}", tms=2, slots=1,
                                                                   tm_conf=tm_conf))

                def run(engine, events, rate):
                    if engine == "weir":
                        return run_weir(c, events, rate)
                    return run_flink(fc, events, rate, timeout)[:3]

                peak = {}
                for engine in engines:
                    if engine == "weir":
                        start, _, _ = run_weir(c, STARTUP_EVENTS, 0)
                        wall, cpu, h = run_weir(c, PEAK_EVENTS, 0)
                        ran = wall - start
                    else:
                        wall, cpu, h, ran = run_flink(fc, PEAK_EVENTS, 0, timeout)
                        ran = ran or wall
                    peak[engine] = PEAK_EVENTS / ran
                    print(f"RESULT name=latency-{label}-peak engine={engine} events={PEAK_EVENTS} "
                          f"seconds={wall:.3f} cpu_seconds={cpu:.3f} events_per_core_sec={PEAK_EVENTS / cpu:.0f} "
                          f"rate={peak[engine]:.0f} running_seconds={ran:.3f} {fmt(h)}", flush=True)
                for load in LOADS:
                    name = f"latency-{label}-{int(load * 100)}pct"
                    per = {e: [] for e in engines}
                    for _ in range(runs):
                        for engine in engines:
                            rate = int(peak[engine] * load)
                            events = int(rate * SECONDS)
                            wall, cpu, h = run(engine, events, rate)
                            per[engine].append((percentile(h, 0.5, 0), percentile(h, 0.99, 0),
                                                percentile(h, 0.999, 0), max(k for k, v in h.items() if v[0])))
                            print(f"RESULT name={name} engine={engine} events={events} seconds={wall:.3f} "
                                  f"cpu_seconds={cpu:.3f} events_per_core_sec={events / cpu:.0f} "
                                  f"rate={rate} {fmt(h)}", flush=True)
                    for engine in engines:
                        rate = int(peak[engine] * load)
                        med = [statistics.median(x[i] for x in per[engine]) for i in range(4)]
                        print(f"RESULT name={name}-median engine={engine} events={int(rate * SECONDS)} "
                              f"seconds={SECONDS:.3f} cpu_seconds=0 events_per_core_sec=0 rate={rate} "
                              f"p50_us={med[0]:.0f} p99_us={med[1]:.0f} p999_us={med[2]:.0f} "
                              f"max_us={med[3]:.0f}", flush=True)
                        table.append((engine, label, peak[engine], load, rate, med))
    print("\n| engine | `execution.buffer-timeout` | measured peak | load | p50 | p99 | p99.9 | max |")
    print("|---|---|---|---|---|---|---|---|")
    for engine, label, pk, load, rate, med in table:
        t = f"default ({DEFAULT_TIMEOUT[engine]})" if label == "default" else label.replace("ms", " ms")
        ms = [f"{x / 1000:.2f} ms" for x in med]
        print(f"| {'weir' if engine == 'weir' else 'Flink 2.3.0'} | {t} | {pk / 1e6:.2f} M events/s | "
              f"{int(load * 100)} % ({rate / 1e6:.2f} M/s) | {' | '.join(ms)} |")


if __name__ == "__main__":
    main()
