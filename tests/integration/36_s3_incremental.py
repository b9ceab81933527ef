"""Incremental checkpoints on S3: a keyed job with large state, then about 1 % of its keys updated
between two checkpoints; the next checkpoint must upload about 1 % of the state, not all of it.
On a real S3 server (SeaweedFS, deploy/local/s3.sh), state.backend.incremental true (the default):

  run 1: bench/keyedcount.so at -p 2, unthrottled, KEYS keys of VALUE_BYTES each (values that do
         not compress), until the source emitted 4 * KEYS records (98 % of the keys touched);
         `weir stop --savepointPath s3://B/sp` (the whole state in S3)
  run 2: the same job from that savepoint, throttled to RATE records/s, checkpoints every
         INTERVAL: each checkpoint interval updates about RATE * INTERVAL / KEYS ~ 1 % of the keys.

For two consecutive completed checkpoints n, n+1 of run 2 (n >= the second after the restore:
the first one after a savepoint uploads everything, as in Flink's NO_CLAIM restore), the bucket is
listed with boto3 right after each completes: the objects new under checkpoints/<job>/shared/ plus
the objects under chk-<n+1>/ are what checkpoint n+1 uploaded (bytes; and the number of PUT
requests: one per object, every object being below s3.multipart.threshold). Checks: that is at
most MAX_PCT % of the state (the sum of the objects checkpoint n+1 references: everything under
shared/ that is still listed and chk-<n+1>/), and at least one object; weir's own uploaded_size of
checkpoint n+1 (REST) agrees with boto3's bytes within 10 %. Prints the figures. RocksDB
compactions rewrite files: a checkpoint right after an L0 -> L1 compaction uploads the rewritten
files (as Flink's does), so the pair measured is the first one with no compaction between
(up to PAIRS pairs are tried; the figures of every pair are printed)."""

import os
import time

from s3test import S3Server, savepoint_uri, uri
from weirtest import BUILD, Cluster, check, run_test

KEYS = int(os.environ.get("S3_INCR_KEYS", 200_000))
VALUE_BYTES = 256
INTERVAL_S = 4
RATE = KEYS // 100 // INTERVAL_S  # ~1 % of the keys per checkpoint interval
MAX_PCT = 5.0
PAIRS = 4
PLUGIN = os.path.join(BUILD, "bench", "keyedcount.so")


def records_out(c, jobid, part):
    return sum(st["metrics"]["records_out"] for v in c.job(jobid)["vertices"] if part in v["name"]
               for st in v["subtasks"])


def wait_completed_after(c, jobid, ck_id, timeout=120):
    """Waits for a completed checkpoint newer than ck_id; returns its id (polled every 50 ms, so
    the bucket is listed before the next checkpoint starts uploading)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = c.checkpoints(jobid)["latest"]["completed"]
        if latest and latest["id"] > ck_id:
            return latest["id"]
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint after {ck_id} within {timeout} s: {c.checkpoints(jobid)['counts']}")


def test():
    with S3Server("s3-incremental") as s3:
        bucket = s3.make_bucket()
        s3cfg = s3.weir_config()
        conf = dict(s3cfg)
        conf["state.checkpoints.dir"] = uri(bucket, "checkpoints")
        conf["state.checkpoints.num-retained"] = "3"
        with Cluster("s3-incremental", tms=2, slots=1, checkpoints=f"{INTERVAL_S}s", conf=conf,
                     tm_conf=s3cfg) as c:
            args = [PLUGIN, "--events", "0", "--keys", str(KEYS), "--value-bytes", str(VALUE_BYTES)]
            job1 = c.submit("-p", "2", *args, "--rate", "0")
            c.wait_state(job1, {"RUNNING"}, timeout=60)
            t0 = time.time()
            while records_out(c, job1, "datagen") < 4 * KEYS:
                check(time.time() - t0 < 600, "run 1 did not emit 4 * KEYS records within 600 s")
                time.sleep(0.5)
            r = c.cli("stop", "--savepointPath", uri(bucket, "sp"), job1, check_rc=0, env=s3.weir_env())
            sp = savepoint_uri(r)
            sp_bytes = sum(s3.list_sizes(bucket, sp[len(f"s3://{bucket}/"):] + "/").values())
            print(f"run 1: {records_out(c, job1, 'datagen')} records over {KEYS} keys in "
                  f"{time.time() - t0:.1f} s; savepoint {sp}: {sp_bytes} bytes (boto3)")
            check(sp_bytes >= KEYS * VALUE_BYTES * 0.9 * 0.5, f"the savepoint holds only {sp_bytes} bytes")

            r = c.cli(*c.run_args(sp, *args, "--rate", str(RATE), p=2), check_rc=0, env=s3.weir_env())
            job2 = next((ln.split()[-1] for ln in r.stdout.splitlines()
                         if ln.startswith("Job has been submitted with JobID ")), None)
            check(job2, f"no JobID line in: {r.stdout}")
            c.wait_state(job2, {"RUNNING"}, timeout=60)
            base = f"checkpoints/{job2}/"
            first = wait_completed_after(c, job2, 0)
            n = wait_completed_after(c, job2, first)
            found = None
            for _ in range(PAIRS):
                shared_before = s3.list_sizes(bucket, base + "shared/")
                m = wait_completed_after(c, job2, n)
                shared_after = s3.list_sizes(bucket, base + "shared/")
                chk = s3.list_sizes(bucket, f"{base}chk-{m}/")
                new = {k: v for k, v in shared_after.items() if k not in shared_before}
                new.update(chk)
                state = sum(shared_after.values()) + sum(chk.values())
                up = sum(new.values())
                pct = 100.0 * up / state if state else 100.0
                hist = {h["id"]: h for h in c.checkpoints(job2)["history"]}
                weir_up = hist.get(m, {}).get("uploaded_size")
                weir_state = hist.get(m, {}).get("state_size")
                print(f"checkpoint {m} after {n}: {len(new)} new objects (PUT requests), {up} bytes of "
                      f"{state} referenced ({pct:.2f} %) by boto3; weir reports uploaded_size "
                      f"{weir_up}, state_size {weir_state}; expected ~{100.0 * RATE * INTERVAL_S / KEYS:.1f} % "
                      f"of the keys updated")
                if m == n + 1 and pct <= MAX_PCT and found is None:
                    found = (m, new, up, state, pct, weir_up)
                    break
                n = m
            check(found is not None, f"no checkpoint of run 2 uploaded <= {MAX_PCT} % of the state "
                                     f"(figures above): incremental checkpoints do not work on S3")
            m, new, up, state, pct, weir_up = found
            check(len(new) >= 1 and up > 0, f"checkpoint {m} uploaded nothing (boto3)")
            if weir_up is not None:
                check(abs(weir_up - up) <= 0.1 * max(up, 1) + 4096,
                      f"checkpoint {m}: weir's uploaded_size {weir_up} differs from boto3's {up} bytes of new objects")
            print(f"RESULT name=s3-incremental-checkpoint keys={KEYS} value_bytes={VALUE_BYTES} "
                  f"state_bytes={state} uploaded_bytes={up} put_requests={len(new)} uploaded_pct={pct:.2f}")
            c.cli("cancel", job2)


run_test(test)
