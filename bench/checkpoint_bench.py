"""Checkpoint benchmark, measured in one run:
1. throughput overhead: each job of CKPT_JOBS on two identical clusters, one with checkpoints
   every 1 s and one without, runs alternating (RUNS each, at least 5); overhead =
   1 - median(events/s with) / median(events/s without), and the same for CPU seconds. Jobs:
     keyed-count      random keys (100,000) -> keyed ValueState count -> blackhole: the whole key
                      space is dirty at every checkpoint (CKPT_EVENTS, default 50,000,000)
     keyed-count-10m  the same with CKPT_KEYS keys (default 10,000,000: far more than the state
                      cache; CKPT_KEYED_EVENTS, default 2,000,000)
     nexmark-q1       stateless: barriers and alignment only (CKPT_EVENTS)
     nexmark-q5       windowed (hot items: sliding count windows per auction, then the max per
                      window; CKPT_WINDOW_EVENTS, default 2,000,000)
2. checkpoint duration and alignment time: medians over the checkpoints of the runs (REST);
3. alignment under backpressure: tests/plugins/slowsink.so (an unbounded datagen -> rebalance ->
   a sink that takes CKPT_BP_SINK_RATE records/s per subtask, default 100,000) for
   CKPT_BP_SECONDS (default 15) on the checkpointing cluster: the channels are full, so a
   barrier queues behind 4 buffers per channel; median and max alignment and duration;
4. recovery time: a rate-limited keyed-count job on the checkpointing cluster; a task manager is
   killed with kill -9 and restarted at once; recovery = from the kill until the sink subtasks of
   the new attempt report records again (metrics reach the job manager every 100 ms).
Prints RESULT lines. Usage: checkpoint_bench.py RUNS
CKPT_JOBS: a comma-separated subset of the jobs above (default: all four);
CKPT_PARTS: a comma-separated subset of overhead,backpressure,recovery (default: all)."""

import os
import statistics
import subprocess
import sys
import time

import weirtest  # tests/lib, on PYTHONPATH (bench/run.sh)

PLUGIN = os.path.join(weirtest.BUILD, "bench", "keyedcount.so")
NEXMARK = os.path.join(weirtest.BUILD, "examples", "nexmark.so")
SLOWSINK = os.path.join(weirtest.BUILD, "tests", "plugins", "slowsink.so")
EVENTS = int(os.environ.get("CKPT_EVENTS", 50_000_000))
KEYED_EVENTS = int(os.environ.get("CKPT_KEYED_EVENTS", 2_000_000))
WINDOW_EVENTS = int(os.environ.get("CKPT_WINDOW_EVENTS", 2_000_000))
KEYS = int(os.environ.get("CKPT_KEYS", 10_000_000))
BP_SECONDS = float(os.environ.get("CKPT_BP_SECONDS", 15))
BP_SINK_RATE = int(os.environ.get("CKPT_BP_SINK_RATE", 100_000))
# name -> (plugin, args, events)
ALL_JOBS = {
    "keyed-count": (PLUGIN, [], EVENTS),
    "keyed-count-10m": (PLUGIN, ["--keys", str(KEYS)], KEYED_EVENTS),
    "nexmark-q1": (NEXMARK, ["--query", "q1"], EVENTS),
    "nexmark-q5": (NEXMARK, ["--query", "q5"], WINDOW_EVENTS),
}
JOBS = [j for j in os.environ.get("CKPT_JOBS", ",".join(ALL_JOBS)).split(",") if j]
PARTS = set(p for p in os.environ.get("CKPT_PARTS", "overhead,backpressure,recovery").split(",") if p)


def cluster(name, checkpointing):
    conf = {"heartbeat.interval": "100ms", "heartbeat.timeout": "3s"}
    return weirtest.Cluster(name, tms=2, slots=1, conf=conf, checkpoints="1s" if checkpointing else None)


def timed_run(c, plugin, args, events):
    pids = c.pids()
    cpu0 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    t0 = time.time()
    r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", c.address, "run", "-d", "-p", "2",
                        plugin] + args + ["--events", str(events)], capture_output=True, text=True, check=True)
    jobid = r.stdout.split()[-1]
    c.wait_state(jobid, {"FINISHED"}, timeout=1800)
    wall = time.time() - t0
    cpu = sum(weirtest.proc_cpu_seconds(p) for p in pids) - cpu0
    return jobid, wall, cpu


def sink_records(job):
    return sum(st["metrics"]["records_in"] for v in job["vertices"] if "blackhole" in v["name"]
               for st in v["subtasks"])


def history(c, jobid, durations, alignments, sizes):
    for h in c.checkpoints(jobid)["history"]:
        if h["status"] == "COMPLETED":
            durations.append(h["duration_ms"])
            alignments.append(h["alignment_duration_ms"])
            sizes.append(h["state_size"])


def overhead(plain, ckpt, runs, job_name):
    plugin, args, events = ALL_JOBS[job_name]
    off, on, durations, alignments, sizes = [], [], [], [], []
    for _ in range(runs):
        for c, acc, label in [(plain, off, "none"), (ckpt, on, "1s")]:
            jobid, wall, cpu = timed_run(c, plugin, args, events)
            acc.append((events / wall, wall, cpu))
            print(f"RESULT name={job_name}-checkpoints-{label} engine=weir events={events} seconds={wall:.3f} "
                  f"cpu_seconds={cpu:.3f} events_per_core_sec={events / cpu:.0f}", flush=True)
            if c is ckpt:
                history(c, jobid, durations, alignments, sizes)
    thr_off = statistics.median(x[0] for x in off)
    thr_on = statistics.median(x[0] for x in on)
    cpu_off = statistics.median(x[2] for x in off)
    cpu_on = statistics.median(x[2] for x in on)
    overhead = 100.0 * (1 - thr_on / thr_off)
    med_on = sorted(on)[len(on) // 2]
    print(f"RESULT name={job_name}-checkpoint-overhead engine=weir events={events} seconds={med_on[1]:.3f} "
          f"cpu_seconds={med_on[2]:.3f} events_per_core_sec={events / med_on[2]:.0f} "
          f"throughput_off={thr_off:.0f} throughput_on={thr_on:.0f} overhead_pct={overhead:.1f} "
          f"cpu_overhead_pct={100.0 * (cpu_on / cpu_off - 1):.1f} "
          f"events_per_core_sec_off={events / cpu_off:.0f} events_per_core_sec_on={events / cpu_on:.0f}",
          flush=True)
    print_durations(job_name, durations, alignments, sizes)


def print_durations(job_name, durations, alignments, sizes):
    if durations:
        print(f"RESULT name={job_name}-checkpoint-duration engine=weir events={len(durations)} seconds="
              f"{statistics.median(durations) / 1000:.3f} cpu_seconds=0 events_per_core_sec=0 "
              f"duration_ms_median={statistics.median(durations):.0f} duration_ms_max={max(durations):.0f} "
              f"alignment_ms_median={statistics.median(alignments):.0f} "
              f"alignment_ms_max={max(alignments):.0f} state_bytes_median={statistics.median(sizes):.0f}",
              flush=True)


def backpressure(ckpt):
    """Alignment while every channel is full: a slow sink, checkpoints every second."""
    r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", ckpt.address, "run", "-d", "-p", "2",
                        SLOWSINK, "--sink-rate", str(BP_SINK_RATE)], capture_output=True, text=True, check=True)
    jobid = r.stdout.split()[-1]
    ckpt.wait_checkpoints(jobid, 1)
    t0 = time.time()
    first = max(h["id"] for h in ckpt.checkpoints(jobid)["history"] if h["status"] == "COMPLETED")
    time.sleep(BP_SECONDS)
    durations, alignments, sizes = [], [], []
    for h in ckpt.checkpoints(jobid)["history"]:
        if h["status"] == "COMPLETED" and h["id"] > first:
            durations.append(h["duration_ms"])
            alignments.append(h["alignment_duration_ms"])
            sizes.append(h["state_size"])
    ckpt.cli("cancel", jobid)
    ckpt.wait_state(jobid, {"CANCELED"}, timeout=120)
    print(f"RESULT name=backpressure-checkpoints engine=weir events={len(durations)} "
          f"seconds={time.time() - t0:.3f} cpu_seconds=0 events_per_core_sec=0 sink_rate={BP_SINK_RATE}",
          flush=True)
    print_durations("backpressure", durations, alignments, sizes)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    unknown = [j for j in JOBS if j not in ALL_JOBS]
    if unknown:
        raise SystemExit(f"CKPT_JOBS: unknown job {unknown[0]!r}: one of {', '.join(ALL_JOBS)}")
    with cluster("ckbench-off", False) as plain, cluster("ckbench-on", True) as ckpt:
        if "overhead" in PARTS:
            for job_name in JOBS:
                overhead(plain, ckpt, runs, job_name)
        if "backpressure" in PARTS:
            backpressure(ckpt)
        if "recovery" not in PARTS:
            return
        # Recovery time.
        r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", ckpt.address, "run", "-d", "-p", "2",
                            PLUGIN, "--events", "0", "--rate", "200000"], capture_output=True, text=True, check=True)
        jobid = r.stdout.split()[-1]
        ckpt.wait_checkpoints(jobid, 2)
        recoveries = []
        for _ in range(runs):
            attempt = ckpt.job(jobid)["attempt"]
            t0 = time.time()
            ckpt.kill9(ckpt.tms[1])
            ckpt.start_taskmanager(index=1)
            while time.time() - t0 < 60:
                job = ckpt.job(jobid)
                if job["attempt"] > attempt and job["state"] == "RUNNING" and sink_records(job) > 0:
                    break
                time.sleep(0.02)
            rec = time.time() - t0
            recoveries.append(rec)
            print(f"RESULT name=recovery engine=weir events=1 seconds={rec:.3f} cpu_seconds=0 events_per_core_sec=0", flush=True)
            ckpt.wait_checkpoints(jobid, ckpt.checkpoints(jobid)["counts"]["completed"] + 2)
        print(f"RESULT name=recovery-median engine=weir events={len(recoveries)} seconds={statistics.median(recoveries):.3f} "
              f"cpu_seconds=0 events_per_core_sec=0")
        ckpt.cli("cancel", jobid)


main()
