"""A frozen S3 server does not stop the job manager's main loop (jobmanager/storage_worker.c):
wordcount with checkpoints every 500 ms and high availability, both on a real S3 server (SeaweedFS,
deploy/local/s3.sh, default s3.* retry settings: a call to a frozen server takes about 50 s to
give up), heartbeat.timeout 10 s. Once checkpoints complete, the SeaweedFS process is frozen with
SIGSTOP for FREEZE_S seconds (longer than heartbeat.timeout), then SIGCONT. Checks:
- during the freeze the job manager answers REST, keeps both task managers registered (no
  heartbeat timeout: its loop never blocks on S3) and the job stays RUNNING (polled all along);
- no failover: the job's attempt and restarts are unchanged, its exception history is empty;
- the checkpoint in flight at the freeze does not complete in it: it fails (counts.failed grows:
  the checkpoint timeout is 5 s; the usual case, the freeze starts right after a trigger) or, if
  its _metadata put was already hanging, completes only after SIGCONT (duration >= freeze - 5 s);
  checkpoints complete again after SIGCONT, the latest one's _metadata and the HA pointer are in
  the bucket (boto3 listing, not weir);
- the job FINISHES and the committed output equals the oracle exactly (tr | sort | uniq -c)."""

import os
import signal
import time

from s3test import S3Server, uri
from weirtest import EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts, run_test

N_WORDS = 400_000
RATE = 400  # lines per second over all source subtasks: the job runs well past the freeze
FREEZE_S = 40


def test():
    with S3Server("s3-frozen") as s3:
        bucket = s3.make_bucket()
        s3cfg = s3.weir_config()  # default retries: a frozen server blocks a call ~50 s
        conf = dict(s3cfg)
        conf["state.checkpoints.dir"] = uri(bucket, "checkpoints")
        conf["high-availability.storageDir"] = uri(bucket, "ha")
        conf["heartbeat.timeout"] = "10s"
        conf["execution.checkpointing.timeout"] = "5s"
        conf["execution.checkpointing.tolerable-failed-checkpoints"] = "1000"
        tm_conf = dict(s3cfg)
        tm_conf["heartbeat.timeout"] = "10s"
        with Cluster("s3-frozen", tms=2, slots=2, checkpoints="500ms", conf=conf,
                     tm_conf=tm_conf) as c:
            text = os.path.join(c.dir, "input.txt")
            gen_text(text, N_WORDS, seed=37)
            out = os.path.join(c.dir, "out")
            jobid = c.submit("-p", "2", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                             "--output", out, "--rate", str(RATE))
            c.wait_state(jobid, {"RUNNING"}, timeout=60)
            c.wait_checkpoints(jobid, 2, timeout=60)
            job0 = c.job(jobid)
            before = c.checkpoints(jobid)
            last_before = before["latest"]["completed"]["id"]
            print(f"before the freeze: attempt {job0['attempt']}, {before['counts']}, "
                  f"latest completed {last_before}")
            tms0 = sorted(t["id"] for t in c.get("/taskmanagers")["taskmanagers"])
            check(len(tms0) == 2, f"2 task managers expected: {tms0}")

            pid = s3.pid()
            check(pid, "no SeaweedFS pid (s3test)")
            # freeze right after a trigger: the subtasks' uploads of that checkpoint hang, so it
            # expires (checkpoint timeout 5 s). If its uploads were already done, its completion
            # (_metadata put) hangs on the job manager's storage worker instead and completes only
            # after SIGCONT: either way a checkpoint overlapping the freeze does not complete in it.
            n_trig = c.checkpoints(jobid)["counts"]["triggered"]
            deadline = time.time() + 30
            while time.time() < deadline:
                counts = c.checkpoints(jobid)["counts"]
                if counts["triggered"] > n_trig and counts["in_progress"] == 1:
                    break
                time.sleep(0.01)
            os.kill(pid, signal.SIGSTOP)
            t_stop = time.time()
            slowest = 0.0
            try:
                while time.time() < t_stop + FREEZE_S:
                    t0 = time.time()
                    job = c.job(jobid)
                    tms = sorted(t["id"] for t in c.get("/taskmanagers")["taskmanagers"])
                    slowest = max(slowest, time.time() - t0)
                    check(job["state"] == "RUNNING",
                          f"during the freeze: the job is {job['state']}: {job.get('message')}")
                    check(job["attempt"] == job0["attempt"],
                          f"during the freeze: attempt {job0['attempt']} -> {job['attempt']}")
                    check(tms == tms0, f"during the freeze: task managers {tms0} -> {tms}")
                    time.sleep(0.5)
            finally:
                os.kill(pid, signal.SIGCONT)
            t_back = time.time()
            during = c.checkpoints(jobid)
            print(f"SeaweedFS frozen {t_back - t_stop:.1f} s: REST answered in {slowest:.2f} s at "
                  f"worst; checkpoints {during['counts']}")

            deadline = time.time() + 180
            first_ok = None
            while time.time() < deadline:
                job = c.job(jobid)
                check(job["state"] in ("RUNNING", "FINISHED"),
                      f"after the freeze: the job is {job['state']}: {job.get('message')}")
                check(job["attempt"] == job0["attempt"],
                      f"after the freeze: attempt {job0['attempt']} -> {job['attempt']}")
                cks = c.checkpoints(jobid)
                latest = cks["latest"]["completed"]
                if latest and latest["id"] > during["latest"]["completed"]["id"] and first_ok is None:
                    first_ok = time.time() - t_back
                if first_ok is not None and latest["id"] >= during["latest"]["completed"]["id"] + 2:
                    break
                if job["state"] == "FINISHED":
                    break
                time.sleep(0.3)
            after = c.checkpoints(jobid)
            failed = after["counts"]["failed"] - before["counts"]["failed"]
            print(f"after SIGCONT: {after['counts']}; {failed} checkpoints failed; first completion "
                  f"{first_ok if first_ok is None else round(first_ok, 1)} s after SIGCONT")
            late = [h for h in after.get("history", [])
                    if h["status"] == "COMPLETED" and h["duration_ms"] >= (FREEZE_S - 5) * 1000]
            print(f"checkpoints overlapping the freeze: {failed} failed, "
                  f"{[(h['id'], h['duration_ms']) for h in late]} completed late (id, ms)")
            check(failed >= 1 or late,
                  f"no checkpoint failed or was held up while S3 was frozen: {after['counts']}")
            check(after["latest"]["completed"]["id"] > during["latest"]["completed"]["id"],
                  f"no checkpoint completed after SIGCONT: {after['counts']}")
            tms = sorted(t["id"] for t in c.get("/taskmanagers")["taskmanagers"])
            check(tms == tms0, f"task managers {tms0} -> {tms}")
            exc = c.get(f"/jobs/{jobid}/exceptions")
            entries = exc.get("exceptionHistory", {}).get("entries", [])
            check(not entries, f"the job recorded failures: {entries}")
            job = c.job(jobid)
            check(job.get("restarts", 0) == job0.get("restarts", 0),
                  f"the job restarted ({job0.get('restarts')} -> {job.get('restarts')})")
            objs = s3.list_sizes(bucket)
            path = after["latest"]["completed"]["path"]
            prefix = f"s3://{bucket}/"
            check(path.startswith(prefix), f"the latest checkpoint is not in the bucket: {path}")
            meta = path[len(prefix):].rstrip("/") + "/_metadata"
            check(objs.get(meta, 0) > 0, f"boto3: no s3://{bucket}/{meta} (latest checkpoint {path})")
            check(f"ha/jobs/{jobid}/checkpoint" in objs,
                  f"boto3: no HA pointer s3://{bucket}/ha/jobs/{jobid}/checkpoint")

            job = c.wait_finished(jobid, timeout=600)
            check(job["attempt"] == job0["attempt"],
                  f"at the end: attempt {job0['attempt']} -> {job['attempt']}")
            oracle = oracle_counts(text)
            lines = check_wordcount_output(out, oracle)
            print(f"job {job['state']}, checkpoints {c.checkpoints(jobid)['counts']}; exactly once: "
                  f"{lines} committed lines, {len(oracle)} words, all counts match")


run_test(test)
