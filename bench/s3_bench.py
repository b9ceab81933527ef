"""S3 checkpoint storage benchmark: POSIX (the local disk) against S3 (SeaweedFS on this machine,
deploy/local/s3.sh: loopback HTTP, SigV4, the same disk underneath), on real clusters (1 job
manager, 2 task managers with 2 slots each).

1. state (S3B_PARTS contains "state"): about 1 GB of keyed state (bench/keyedcount.so at -p 2,
   S3B_KEYS keys x S3B_VALUE_BYTES bytes, unthrottled until the source emitted 3 * keys records:
   95 % of the keys touched), built once per backend and stopped with a savepoint into that
   backend. Then RUNS times per backend, alternating POSIX and S3:
     restore   `weir run -d -s SAVEPOINT -p 2` of the throttled job, timed from the submission
               until every subtask is RUNNING and the sink received records (the keyed operator
               processes only after its restore: every SST file downloaded from S3, hard-linked
               or copied on POSIX);
     checkpoint the first checkpoint of the restored job (checkpoints every 2 s, incremental):
               nothing of the restored state is in the job's shared/ yet, so it uploads all of
               it — its duration_ms and uploaded_size from REST (the job manager's figures),
               and the wall time from the restore to its completion;
   the restored job is then canceled and its checkpoint directory removed.
2. overhead (S3B_PARTS contains "overhead"): the 10 M-key count (keyedcount.so --keys 10,000,000,
   S3B_OVERHEAD_EVENTS events, default 6,000,000) with checkpoints every 10 s into S3, into POSIX
   and without checkpoints: RUNS runs of each, alternating; events/s and CPU seconds;
   overhead = 1 - median(events/s with) / median(events/s without).
Prints RESULT lines (the format of the other benchmarks) and a summary. Usage: s3_bench.py RUNS
Environment: S3B_KEYS (default 1,000,000), S3B_VALUE_BYTES (default 1024), S3B_PARTS (default
"state,overhead"), S3B_OVERHEAD_EVENTS, S3B_OVERHEAD_KEYS (default 10,000,000). Disk: about
3 GB free (the POSIX savepoint, the SeaweedFS volumes, the checkpoints of one restored job)."""

import os
import shutil
import statistics
import subprocess
import sys
import time

import s3test  # tests/lib, on PYTHONPATH (bench/run.sh)
import weirtest

PLUGIN = os.path.join(weirtest.BUILD, "bench", "keyedcount.so")
KEYS = int(os.environ.get("S3B_KEYS", 1_000_000))
VALUE_BYTES = int(os.environ.get("S3B_VALUE_BYTES", 1024))
PARTS = set(p for p in os.environ.get("S3B_PARTS", "state,overhead").split(",") if p)
OVERHEAD_EVENTS = int(os.environ.get("S3B_OVERHEAD_EVENTS", 6_000_000))
OVERHEAD_KEYS = int(os.environ.get("S3B_OVERHEAD_KEYS", 10_000_000))
BUILD_FACTOR = 3
RESTORE_RATE = 20_000  # records per second of the restored jobs: enough to see records arrive


def result(name, seconds, events=1, cpu=0.0, **extra):
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    eps = f"{events / cpu:.0f}" if cpu else "0"
    print(f"RESULT name={name} engine=weir events={events} seconds={seconds:.3f} cpu_seconds={cpu:.3f} "
          f"events_per_core_sec={eps} {fields}".rstrip(), flush=True)


def job_args(keys, rate=0, events=0):
    return [PLUGIN, "--events", str(events), "--keys", str(keys), "--value-bytes", str(VALUE_BYTES),
            "--rate", str(rate)]


def records(c, jobid, part):
    job = c.job(jobid)
    return sum(st["metrics"]["records_in" if part == "blackhole" else "records_out"]
               for v in job["vertices"] if part in v["name"] for st in v["subtasks"])


def submit(c, argv, env=None):
    r = c.cli("run", "-d", *argv, check_rc=0, env=env)
    for line in r.stdout.splitlines():
        if line.startswith("Job has been submitted with JobID "):
            return line.split()[-1]
    raise weirtest.TestFailure(f"no JobID line in: {r.stdout}")


class Backend:
    """Where a cluster's checkpoints and savepoints go: a local directory or a bucket."""

    def __init__(self, name, s3=None):
        self.name = name
        self.s3 = s3
        self.bucket = s3.make_bucket("weir-bench") if s3 else None

    def conf(self, checkpoints):
        """Job manager configuration: the s3.* keys and, with checkpoints, state.checkpoints.dir
        in the bucket (POSIX: the cluster's default, <cluster dir>/checkpoints)."""
        if not self.s3:
            return {}
        out = dict(self.s3.weir_config())
        if checkpoints:
            out["state.checkpoints.dir"] = s3test.uri(self.bucket, "checkpoints")
        return out

    def tm_conf(self):
        return dict(self.s3.weir_config()) if self.s3 else {}

    def location(self, c, *parts):
        if self.s3:
            return s3test.uri(self.bucket, *parts)
        return os.path.join(c.dir, *parts)

    def env(self):
        return self.s3.weir_env() if self.s3 else None

    def size(self, c, loc):
        if self.s3:
            b, key = s3test.split_uri(loc)
            return sum(self.s3.list_sizes(b, key + "/").values())
        return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(loc) for f in fs)

    def remove(self, c, loc):
        if self.s3:
            b, key = s3test.split_uri(loc)
            self.s3.delete_prefix(b, key + "/")
        else:
            shutil.rmtree(loc, ignore_errors=True)

    def savepoint_location(self, r):
        return s3test.savepoint_uri(r) if self.s3 else weirtest.savepoint_path(r)


def cluster(name, backend, checkpoints):
    conf = {"heartbeat.interval": "500ms", "heartbeat.timeout": "30s"}
    conf.update(backend.conf(checkpoints))
    return weirtest.Cluster(name, tms=2, slots=2, conf=conf, tm_conf=backend.tm_conf(),
                            checkpoints=checkpoints)


def build_state(c, b):
    """Builds the state and stops with a savepoint into the backend; returns (location, bytes)."""
    t0 = time.time()
    jobid = submit(c, ["-p", "2"] + job_args(KEYS), env=b.env())
    while records(c, jobid, "datagen") < BUILD_FACTOR * KEYS:
        weirtest.check(c.job(jobid)["state"] == "RUNNING", f"build job left RUNNING: {c.job(jobid)}")
        weirtest.check(time.time() - t0 < 3600, "building the state took over an hour")
        time.sleep(0.2)
    built = time.time() - t0
    t0 = time.time()
    r = c.cli("stop", "--savepointPath", b.location(c, "sp"), jobid, check_rc=0, timeout=3600, env=b.env())
    wall = time.time() - t0
    sp = b.savepoint_location(r)
    hist = c.checkpoints(jobid)["history"]
    h = max(hist, key=lambda x: x["id"]) if hist else {}
    size = b.size(c, sp)
    result(f"s3bench-{b.name}-build", built, keys=KEYS, value_bytes=VALUE_BYTES)
    result(f"s3bench-{b.name}-savepoint-write", wall, bytes=size, state_size=h.get("state_size"),
           duration_ms=h.get("duration_ms"), mb_per_s=f"{size / wall / 1e6:.0f}")
    return sp, size


def restore_and_checkpoint(c, b, sp):
    """One restore of sp and the first (full) checkpoint of the restored job. Returns
    (restore seconds, checkpoint duration ms, uploaded bytes, wall from restore to the checkpoint)."""
    t0 = time.time()
    jobid = submit(c, ["-s", sp, "-p", "2"] + job_args(KEYS, RESTORE_RATE), env=b.env())
    deadline = t0 + 1800
    while records(c, jobid, "blackhole") == 0:
        job = c.job(jobid)
        weirtest.check(job["state"] in ("CREATED", "RUNNING"), f"restored job {jobid} is {job['state']}: {job.get('message')}")
        weirtest.check(time.time() < deadline, f"restored job {jobid} produced nothing in 1800 s")
        time.sleep(0.05)
    restore = time.time() - t0
    while True:
        latest = c.checkpoints(jobid)["latest"]["completed"]
        if latest:
            break
        weirtest.check(time.time() < deadline, f"restored job {jobid} completed no checkpoint")
        time.sleep(0.05)
    wall = time.time() - t0
    c.cli("cancel", jobid, check_rc=0)
    c.wait_state(jobid, {"CANCELED", "FAILED", "FINISHED"}, timeout=600)
    b.remove(c, b.location(c, "checkpoints", jobid))
    return restore, latest["duration_ms"], latest.get("uploaded_size") or latest.get("state_size"), wall


def part_state(runs, backends):
    out = {}
    clusters = {}
    try:
        for b in backends:
            clusters[b.name] = cluster(f"s3bench-{b.name}", b, "2s")
        sps = {b.name: build_state(clusters[b.name], b) for b in backends}
        figures = {b.name: [] for b in backends}
        for _ in range(runs):
            for b in backends:
                c = clusters[b.name]
                sp, size = sps[b.name]
                restore, dur_ms, uploaded, wall = restore_and_checkpoint(c, b, sp)
                figures[b.name].append((restore, dur_ms, uploaded))
                result(f"s3bench-{b.name}-restore", restore, bytes=size)
                result(f"s3bench-{b.name}-checkpoint", dur_ms / 1000.0, duration_ms=dur_ms,
                       uploaded_bytes=uploaded, mb_per_s=f"{(uploaded or 0) / max(dur_ms, 1) / 1e3:.0f}",
                       restore_to_checkpoint_s=f"{wall:.3f}")
        for b in backends:
            f = figures[b.name]
            med_r = statistics.median(x[0] for x in f)
            med_c = statistics.median(x[1] for x in f)
            up = statistics.median(x[2] or 0 for x in f)
            result(f"s3bench-{b.name}-restore-median", med_r, bytes=sps[b.name][1])
            result(f"s3bench-{b.name}-checkpoint-median", med_c / 1000.0, duration_ms=f"{med_c:.0f}",
                   uploaded_bytes=f"{up:.0f}")
            out[b.name] = (med_r, med_c, sps[b.name][1])
    finally:
        for c in clusters.values():
            c.stop()
    return out


def part_overhead(runs, backends):
    kinds = [("none", None)] + [(b.name, b) for b in backends]
    clusters = {}
    figures = {k: [] for k, _ in kinds}
    try:
        for k, b in kinds:
            clusters[k] = cluster(f"s3bench-ov-{k}", b or Backend("none"), "10s" if b else None)
        for _ in range(runs):
            for k, b in kinds:
                c = clusters[k]
                pids = c.pids()
                cpu0 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
                t0 = time.time()
                jobid = submit(c, ["-p", "2", PLUGIN, "--keys", str(OVERHEAD_KEYS), "--events", str(OVERHEAD_EVENTS)],
                               env=b.env() if b else None)
                c.wait_state(jobid, {"FINISHED"}, timeout=3600)
                wall = time.time() - t0
                cpu = sum(weirtest.proc_cpu_seconds(p) for p in pids) - cpu0
                ck = c.checkpoints(jobid)["counts"] if b else {}
                figures[k].append((OVERHEAD_EVENTS / wall, wall, cpu))
                result(f"s3bench-keyed-count-10m-checkpoints-{k}", wall, events=OVERHEAD_EVENTS, cpu=cpu,
                       checkpoints_completed=ck.get("completed", 0), checkpoints_failed=ck.get("failed", 0))
                if b:
                    b.remove(c, b.location(c, "checkpoints", jobid))
        base = statistics.median(x[0] for x in figures["none"])
        base_cpu = statistics.median(x[2] for x in figures["none"])
        out = {}
        for k, _ in kinds:
            thr = statistics.median(x[0] for x in figures[k])
            cpu = statistics.median(x[2] for x in figures[k])
            wall = statistics.median(x[1] for x in figures[k])
            out[k] = 100.0 * (1 - thr / base)
            result(f"s3bench-keyed-count-10m-checkpoints-{k}-median", wall, events=OVERHEAD_EVENTS, cpu=cpu,
                   throughput=f"{thr:.0f}", overhead_pct=f"{out[k]:.1f}",
                   cpu_overhead_pct=f"{100.0 * (cpu / base_cpu - 1):.1f}")
        return out
    finally:
        for c in clusters.values():
            c.stop()


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    unknown = PARTS - {"state", "overhead"}
    if unknown:
        raise SystemExit(f"S3B_PARTS: unknown part {sorted(unknown)[0]!r}: state, overhead")
    with s3test.S3Server("s3bench") as s3:
        print(f"SeaweedFS started in {s3.start_seconds:.1f} s at {s3.endpoint}", flush=True)
        backends = [Backend("posix"), Backend("s3", s3)]
        summary = []
        if "state" in PARTS:
            st = part_state(runs, backends)
            for name, (r, cms, size) in st.items():
                summary.append(f"{name:6s} state {size / 1e9:.2f} GB: restore {r:.1f} s, full checkpoint {cms / 1000:.1f} s")
        if "overhead" in PARTS:
            ov = part_overhead(runs, backends)
            for k, pct in ov.items():
                summary.append(f"keyed-count-10m, checkpoints every 10 s to {k}: throughput overhead {pct:.1f} %")
        print("\n".join(["summary (medians of %d):" % runs] + ["  " + s for s in summary]), flush=True)
        subprocess.run(["du", "-sh", s3.dir], check=False)


main()
