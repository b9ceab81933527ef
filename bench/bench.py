"""Benchmark driver: starts its own cluster (1 job manager + 2 task managers with 1 slot each, so
a -p 2 job spans both), runs one job attached per run, and prints one line per run:
  RESULT name=... events=... seconds=... cpu_seconds=... events_per_core_sec=...
cpu_seconds counts every weir process: the job manager, both task managers and the CLI.
After all runs it prints the median run as name=<name>-median.
Usage: bench.py NAME RUNS   (NAME: q0 q1 q2 q3 q4 q5 q7 q8 q11 keyed-count keyed-count-10m; the event-time
queries q3-q11 read NEXMARK_EVENTS too, default 2,000,000, and end in a blackhole sink)
CHECKPOINTS=<interval> (e.g. 1s): the cluster takes exactly-once checkpoints at that interval;
results are then named <name>-ckpt-<interval>.
CURVE=1: the cluster authenticates and encrypts its control and data planes with ZeroMQ CURVE
(docs/security.md); results are then named <name>-curve."""

import os
import resource
import statistics
import subprocess
import sys
import time

import weirtest  # tests/lib, on PYTHONPATH (bench/run.sh)

JOBS = {
    "q0": ("examples/nexmark.so", ["--query", "q0"], "NEXMARK_EVENTS", 20_000_000),
    "q1": ("examples/nexmark.so", ["--query", "q1"], "NEXMARK_EVENTS", 20_000_000),
    "q2": ("examples/nexmark.so", ["--query", "q2"], "NEXMARK_EVENTS", 20_000_000),
    "q3": ("examples/nexmark.so", ["--query", "q3"], "NEXMARK_EVENTS", 2_000_000),
    "q4": ("examples/nexmark.so", ["--query", "q4"], "NEXMARK_EVENTS", 2_000_000),
    "q5": ("examples/nexmark.so", ["--query", "q5"], "NEXMARK_EVENTS", 2_000_000),
    "q7": ("examples/nexmark.so", ["--query", "q7"], "NEXMARK_EVENTS", 2_000_000),
    "q8": ("examples/nexmark.so", ["--query", "q8"], "NEXMARK_EVENTS", 2_000_000),
    "q11": ("examples/nexmark.so", ["--query", "q11"], "NEXMARK_EVENTS", 2_000_000),
    "keyed-count": ("bench/keyedcount.so", [], "KEYED_EVENTS", 20_000_000),
    # large state: 10 M keys, far more than the state cache (state/README.md "Large state");
    # CHECKPOINTS=1s runs it with exactly-once checkpoints (results named <name>-ckpt-1s)
    "keyed-count-10m": ("bench/keyedcount.so", ["--keys", "10000000"], "KEYED10M_EVENTS",
                        6_000_000),
}


def one_run(name, cluster):
    plugin, args, env_key, default_events = JOBS[name]
    events = int(os.environ.get(env_key, default_events))
    pids = cluster.pids()
    cpu0 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", cluster.address, "run", "-p", "2",
                        os.path.join(weirtest.BUILD, plugin)] + args + ["--events", str(events)],
                       capture_output=True, text=True, timeout=3600)
    wall = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench {name}: job failed: {r.stdout}{r.stderr}\n{cluster.log_tail()}")
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    cpu = (cpu1 - cpu0) + (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return events, wall, cpu


def main():
    name, runs = sys.argv[1], int(sys.argv[2])
    if name not in JOBS:
        raise SystemExit(f"unknown benchmark {name!r}: one of {', '.join(JOBS)}")
    curve = os.environ.get("CURVE") == "1"
    label = f"{name}-curve" if curve else name
    ckpt = os.environ.get("CHECKPOINTS") or None
    if ckpt:
        label = f"{label}-ckpt-{ckpt}"
    with weirtest.Cluster(f"bench-{label}", tms=2, slots=1, curve=curve, checkpoints=ckpt) as c:
        results = []
        for _ in range(runs):
            events, wall, cpu = one_run(name, c)
            results.append((events / cpu, events, wall, cpu))
            print(f"RESULT name={label} events={events} seconds={wall:.3f} cpu_seconds={cpu:.3f} "
                  f"events_per_core_sec={events / cpu:.0f}", flush=True)
        results.sort()
        med = results[len(results) // 2]
        print(f"RESULT name={label}-median events={med[1]} seconds={statistics.median(r[2] for r in results):.3f} "
              f"cpu_seconds={med[3]:.3f} events_per_core_sec={med[0]:.0f}", flush=True)


main()
