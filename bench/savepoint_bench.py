"""Savepoint benchmark: about 1 GB of keyed state on a real cluster (1 job manager, 2 task
managers with 2 slots each), end to end:
1. build: keyedcount.so at -p 2, unbounded, KEYS random keys with VALUE_BYTES per key (values that
   do not compress), until the source emitted BUILD_FACTOR * KEYS records (about
   1 - e^-BUILD_FACTOR of the keys touched: about 1 GB with the defaults);
2. write: `weir stop --savepointPath DIR` of that job (the stop-with-savepoint: flush of the
   write-back cache, RocksDB checkpoint, every file into the savepoint directory, then the job
   FINISHES), timed on the wall clock and by the savepoint's REST entry (duration, state size);
   with SAVEPOINT_COPY_DIR (default /dev/shm when it has room) an intermediate savepoint of the
   same state is written there too, on another filesystem, where files are copied instead of
   hard-linked;
3. restore, RUNS times each at -p 2 (the same parallelism: every subtask restores one old
   subtask's files whole) and at -p 3 and -p 1 (another parallelism: key-group ranges are cut
   and merged: DeleteRange + SST ingestion): `weir run -d -s SAVEPOINT -p P` of the same job
   (throttled source), timed from the submission until every subtask is RUNNING and the sink
   received records (the keyed operator processes only after its restore); after the first
   restore at each parallelism a savepoint of the restored job reports its state size, printed
   next to the original's (both are SST sizes, overwritten versions not yet compacted included,
   so they differ by what compaction has done, not only by what was restored).
The raw state backend part (RocksDB restore without a cluster) is measured separately by the
state module's own benchmark. Prints RESULT lines. Usage: savepoint_bench.py RUNS
Environment: SP_KEYS (default 1,000,000), SP_VALUE_BYTES (default 1024), SP_BUILD_FACTOR (default
3), SAVEPOINT_COPY_DIR (a directory on another filesystem, or "none")."""

import os
import shutil
import statistics
import sys
import tempfile
import time

import weirtest  # tests/lib, on PYTHONPATH (bench/run.sh)

PLUGIN = os.path.join(weirtest.BUILD, "bench", "keyedcount.so")
KEYS = int(os.environ.get("SP_KEYS", 1_000_000))
VALUE_BYTES = int(os.environ.get("SP_VALUE_BYTES", 1024))
BUILD_FACTOR = float(os.environ.get("SP_BUILD_FACTOR", 3))
RESTORE_RATE = 20_000  # records per second of the restored jobs: enough to see records arrive


def job_args(rate=0):
    return [PLUGIN, "--events", "0", "--keys", str(KEYS), "--value-bytes", str(VALUE_BYTES),
            "--rate", str(rate)]


def records(c, jobid, part):
    job = c.job(jobid)
    return sum(st["metrics"]["records_in" if part == "blackhole" else "records_out"]
               for v in job["vertices"] if part in v["name"] for st in v["subtasks"])


def history_entry(c, jobid, ck):
    for h in c.checkpoints(jobid)["history"]:
        if h["id"] == ck:
            return h
    return None


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def copy_dir():
    env = os.environ.get("SAVEPOINT_COPY_DIR")
    if env == "none":
        return None
    if env:
        return env
    shm = "/dev/shm"
    if os.path.isdir(shm):
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 3 * KEYS * VALUE_BYTES:
            return shm
    return None


def result(name, seconds, **extra):
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    print(f"RESULT name={name} events=1 seconds={seconds:.3f} cpu_seconds=0 events_per_core_sec=0 {fields}",
          flush=True)


def restore_once(c, sp, p, measure_size):
    t0 = time.time()
    jobid = c.resume(sp, *job_args(RESTORE_RATE), p=p)
    running = None
    deadline = t0 + 1800
    while True:
        job = c.job(jobid)
        weirtest.check(job["state"] in ("CREATED", "RUNNING"),
                       f"restored job {jobid} is {job['state']}: {job.get('message')}")
        subtasks = [st for v in job["vertices"] for st in v["subtasks"]]
        if running is None and subtasks and all(st["state"] == "RUNNING" for st in subtasks):
            running = time.time() - t0
        if running is not None and records(c, jobid, "blackhole") > 0:
            break
        weirtest.check(time.time() < deadline, f"restored job {jobid} produced nothing in 1800 s")
        time.sleep(0.05)
    first = time.time() - t0
    size = None
    if measure_size:
        rid = c.trigger_savepoint(jobid, target=os.path.join(c.dir, "check"))
        st = c.wait_savepoint(jobid, rid, timeout=1800)
        weirtest.check("location" in st.get("operation", {}), f"savepoint of the restored job: {st}")
        size = st["progress"]["state_size"]
        shutil.rmtree(st["operation"]["location"], ignore_errors=True)
    c.cli("cancel", jobid, check_rc=0)
    c.wait_state(jobid, {"CANCELED", "FAILED", "FINISHED"}, timeout=600)
    return running, first, size


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    raw = KEYS * VALUE_BYTES
    conf = {"heartbeat.interval": "500ms", "heartbeat.timeout": "30s"}
    with weirtest.Cluster("bench-savepoint", tms=2, slots=2, conf=conf, checkpoints="3600s",
                          savepoints=True) as c:
        # 1. build
        t0 = time.time()
        jobid = c.submit("-p", "2", *job_args())
        target = BUILD_FACTOR * KEYS
        while records(c, jobid, "datagen") < target:
            weirtest.check(c.job(jobid)["state"] == "RUNNING", f"build job left RUNNING: {c.job(jobid)}")
            weirtest.check(time.time() - t0 < 3600, "building the state took over an hour")
            time.sleep(0.2)
        built = time.time() - t0
        n = records(c, jobid, "datagen")
        result("savepoint-build", built, records=n, keys=KEYS, value_bytes=VALUE_BYTES, raw_bytes=raw)

        # 2. write: an intermediate savepoint on another filesystem (copies), then the stop
        other = copy_dir()
        if other:
            dest = tempfile.mkdtemp(prefix="weir-bench-savepoint-", dir=other)
            try:
                t0 = time.time()
                rid = c.trigger_savepoint(jobid, target=dest)
                st = c.wait_savepoint(jobid, rid, timeout=3600)
                wall = time.time() - t0
                weirtest.check("location" in st.get("operation", {}), f"savepoint into {dest}: {st}")
                h = history_entry(c, jobid, st["checkpoint"]) or {}
                size = dir_bytes(st["operation"]["location"])
                result("savepoint-write-copy", wall, bytes=size, state_size=st["progress"]["state_size"],
                       duration_ms=h.get("duration_ms"), mb_per_s=f"{size / wall / 1e6:.0f}", target=other)
            finally:
                shutil.rmtree(dest, ignore_errors=True)
        t0 = time.time()
        sp = c.stop_with_savepoint(jobid, os.path.join(c.dir, "sp"), timeout=3600)
        wall = time.time() - t0
        hist = c.checkpoints(jobid)["history"]
        h = max(hist, key=lambda x: x["id"]) if hist else {}
        size = dir_bytes(sp)
        result("savepoint-write", wall, bytes=size, state_size=h.get("state_size"),
               duration_ms=h.get("duration_ms"), alignment_ms=h.get("alignment_duration_ms"),
               mb_per_s=f"{size / wall / 1e6:.0f}", same_fs="yes")
        weirtest.check(size >= raw * (1 - 2.718281828 ** -BUILD_FACTOR) * 0.8,
                       f"savepoint of {size} bytes for about {raw} bytes of keyed state")

        # 3. restore at the same and at other parallelisms
        for p, label in ((2, "same-p2"), (3, "rescale-p3"), (1, "rescale-p1")):
            times, firsts = [], []
            for i in range(runs):
                running, first, restored_size = restore_once(c, sp, p, measure_size=(i == 0))
                times.append(running)
                firsts.append(first)
                extra = {"to_running_s": f"{running:.3f}", "bytes": size}
                if restored_size is not None:
                    extra["restored_state_size"] = restored_size
                    extra["original_state_size"] = h.get("state_size")
                result(f"savepoint-restore-{label}", first, **extra)
            result(f"savepoint-restore-{label}-median", statistics.median(firsts),
                   to_running_s=f"{statistics.median(times):.3f}", bytes=size)


main()
