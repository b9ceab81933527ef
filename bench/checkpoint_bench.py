"""Checkpoint benchmark, measured in one run:
1. throughput overhead: the keyed-count job (random keys -> keyed ValueState count -> blackhole)
   and Nexmark q1 (stateless) on two identical clusters, one with checkpoints every 1 s and one
   without, runs alternating; overhead = 1 - median(events/s with) / median(events/s without),
   and the same for CPU seconds;
2. checkpoint duration and alignment time: medians over the checkpoints of the runs (REST);
3. recovery time: a rate-limited keyed-count job on the checkpointing cluster; a task manager is
   killed with kill -9 and restarted at once; recovery = from the kill until the sink subtasks of
   the new attempt report records again (metrics reach the job manager every 100 ms).
Prints RESULT lines. Usage: checkpoint_bench.py RUNS"""

import os
import statistics
import subprocess
import sys
import time

import weirtest  # tests/lib, on PYTHONPATH (bench/run.sh)

PLUGIN = os.path.join(weirtest.BUILD, "bench", "keyedcount.so")
EVENTS = int(os.environ.get("CKPT_EVENTS", 50_000_000))
# (name, plugin, args): a keyed job whose whole key space (100,000 keys) is dirty at every
# checkpoint, and a stateless one (Nexmark q1: barriers and alignment only).
JOBS = [
    ("keyed-count", PLUGIN, []),
    ("nexmark-q1", os.path.join(weirtest.BUILD, "examples", "nexmark.so"), ["--query", "q1"]),
]


def cluster(name, checkpointing):
    conf = {"heartbeat.interval": "100ms", "heartbeat.timeout": "3s"}
    return weirtest.Cluster(name, tms=2, slots=1, conf=conf, checkpoints="1s" if checkpointing else None)


def timed_run(c, plugin, args):
    pids = c.pids()
    cpu0 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    t0 = time.time()
    r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", c.address, "run", "-d", "-p", "2",
                        plugin] + args + ["--events", str(EVENTS)], capture_output=True, text=True, check=True)
    jobid = r.stdout.split()[-1]
    c.wait_state(jobid, {"FINISHED"}, timeout=1800)
    wall = time.time() - t0
    cpu = sum(weirtest.proc_cpu_seconds(p) for p in pids) - cpu0
    return jobid, wall, cpu


def sink_records(job):
    return sum(st["metrics"]["records_in"] for v in job["vertices"] if "blackhole" in v["name"]
               for st in v["subtasks"])


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with cluster("ckbench-off", False) as plain, cluster("ckbench-on", True) as ckpt:
        for job_name, plugin, args in JOBS:
            off, on, durations, alignments, sizes = [], [], [], [], []
            for _ in range(runs):
                for c, acc, label in [(plain, off, "none"), (ckpt, on, "1s")]:
                    jobid, wall, cpu = timed_run(c, plugin, args)
                    acc.append((EVENTS / wall, wall, cpu))
                    print(f"RESULT name={job_name}-checkpoints-{label} events={EVENTS} seconds={wall:.3f} "
                          f"cpu_seconds={cpu:.3f} events_per_core_sec={EVENTS / cpu:.0f}", flush=True)
                    if c is ckpt:
                        for h in c.checkpoints(jobid)["history"]:
                            if h["status"] == "COMPLETED":
                                durations.append(h["duration_ms"])
                                alignments.append(h["alignment_duration_ms"])
                                sizes.append(h["state_size"])
            thr_off = statistics.median(x[0] for x in off)
            thr_on = statistics.median(x[0] for x in on)
            cpu_off = statistics.median(x[2] for x in off)
            cpu_on = statistics.median(x[2] for x in on)
            overhead = 100.0 * (1 - thr_on / thr_off)
            med_on = sorted(on)[len(on) // 2]
            print(f"RESULT name={job_name}-checkpoint-overhead events={EVENTS} seconds={med_on[1]:.3f} "
                  f"cpu_seconds={med_on[2]:.3f} events_per_core_sec={EVENTS / med_on[2]:.0f} "
                  f"throughput_off={thr_off:.0f} throughput_on={thr_on:.0f} overhead_pct={overhead:.1f} "
                  f"cpu_overhead_pct={100.0 * (cpu_on / cpu_off - 1):.1f}", flush=True)
            if durations:
                print(f"RESULT name={job_name}-checkpoint-duration events={len(durations)} seconds="
                      f"{statistics.median(durations) / 1000:.3f} cpu_seconds=0 events_per_core_sec=0 "
                      f"duration_ms_median={statistics.median(durations):.0f} duration_ms_max={max(durations):.0f} "
                      f"alignment_ms_median={statistics.median(alignments):.0f} "
                      f"alignment_ms_max={max(alignments):.0f} state_bytes_median={statistics.median(sizes):.0f}",
                      flush=True)

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
            print(f"RESULT name=recovery events=1 seconds={rec:.3f} cpu_seconds=0 events_per_core_sec=0", flush=True)
            ckpt.wait_checkpoints(jobid, ckpt.checkpoints(jobid)["counts"]["completed"] + 2)
        print(f"RESULT name=recovery-median events={len(recoveries)} seconds={statistics.median(recoveries):.3f} "
              f"cpu_seconds=0 events_per_core_sec=0")
        ckpt.cli("cancel", jobid)


main()
