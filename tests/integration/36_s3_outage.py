"""S3 outage during a job: wordcount with checkpoints every 500 ms to a real S3 server (SeaweedFS,
deploy/local/s3.sh), execution.checkpointing.tolerable-failed-checkpoints high. Once checkpoints
complete, the S3 server is stopped (s3.sh stop) for OUTAGE_S seconds, then started again on the
same directory and port (s3.sh start: the bucket and its objects survive). Checks:
- during the outage, checkpoints fail (GET /jobs/<id>/checkpoints counts.failed grows) and the job
  stays RUNNING (polled all along: never RESTARTING, FAILED or CANCELED; restarts unchanged);
- after the server is back, checkpoints complete again (at least 2 newer than the last one before
  the outage), the latest completed checkpoint's _metadata is in the bucket (boto3 listing);
- the job FINISHES and the committed output equals the oracle exactly (tr | sort | uniq -c).
Prints the figures: checkpoints failed during the outage, the time from restart to the next
completed checkpoint."""

import os
import time

from s3test import S3Server, uri
from weirtest import EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts, run_test

N_WORDS = 400_000
RATE = 500  # lines per second over all source subtasks: ~46,000 lines, ~90 s, well past the outage
OUTAGE_S = 8


def test():
    with S3Server("s3-outage") as s3:
        bucket = s3.make_bucket()
        # Short S3 retries: a refused connection fails an upload within about a second.
        s3cfg = s3.weir_config(**{"s3.retry.max-attempts": 2, "s3.retry.initial-backoff": "100ms",
                                  "s3.retry.max-backoff": "300ms", "s3.connect-timeout": "1s",
                                  "s3.request-timeout": "10s"})
        conf = dict(s3cfg)
        conf["state.checkpoints.dir"] = uri(bucket, "checkpoints")
        conf["execution.checkpointing.tolerable-failed-checkpoints"] = "1000"
        with Cluster("s3-outage", tms=2, slots=2, checkpoints="500ms", conf=conf, tm_conf=s3cfg) as c:
            text = os.path.join(c.dir, "input.txt")
            gen_text(text, N_WORDS, seed=36)
            out = os.path.join(c.dir, "out")
            jobid = c.submit("-p", "2", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                             "--output", out, "--rate", str(RATE))
            c.wait_state(jobid, {"RUNNING"}, timeout=60)
            c.wait_checkpoints(jobid, 2, timeout=60)
            before = c.checkpoints(jobid)
            restarts0 = c.job(jobid).get("restarts", 0)
            last_before = before["latest"]["completed"]["id"]
            print(f"before the outage: {before['counts']}, latest completed {last_before}")

            def poll_running(until, what):
                states = set()
                while time.time() < until:
                    job = c.job(jobid)
                    states.add(job["state"])
                    check(job["state"] == "RUNNING",
                          f"{what}: the job is {job['state']} (restarts {job.get('restarts')}): "
                          f"{job.get('message')}")
                    time.sleep(0.2)
                return states

            s3.stop()
            t_stop = time.time()
            poll_running(t_stop + OUTAGE_S, "during the S3 outage")
            during = c.checkpoints(jobid)
            failed = during["counts"]["failed"] - before["counts"]["failed"]
            print(f"after {OUTAGE_S} s of outage: {during['counts']}; {failed} checkpoints failed")
            check(failed >= 1, f"no checkpoint failed during {OUTAGE_S} s without S3: {during['counts']}")
            completed_during = during["counts"]["completed"] - before["counts"]["completed"]
            # one checkpoint whose uploads were done before the stop may still complete
            check(completed_during <= 1, f"{completed_during} checkpoints completed while S3 was down")

            s3.start()
            t_back = time.time()
            print(f"S3 back after {t_back - t_stop:.1f} s (s3.sh start took {s3.start_seconds:.1f} s)")
            deadline = time.time() + 60
            first_ok = None
            while time.time() < deadline:
                job = c.job(jobid)
                check(job["state"] in ("RUNNING", "FINISHED"),
                      f"after the outage: the job is {job['state']}: {job.get('message')}")
                latest = c.checkpoints(jobid)["latest"]["completed"]
                if latest and latest["id"] > last_before + completed_during and first_ok is None:
                    first_ok = time.time() - t_back
                if latest and latest["id"] >= last_before + completed_during + 2:
                    break
                if job["state"] == "FINISHED":
                    break
                time.sleep(0.2)
            check(first_ok is not None, f"no checkpoint completed within 60 s of S3 being back: "
                                        f"{c.checkpoints(jobid)['counts']}")
            print(f"first checkpoint completed {first_ok:.1f} s after S3 was back")
            after = c.checkpoints(jobid)
            check(c.job(jobid).get("restarts", 0) == restarts0,
                  f"the job restarted during the outage ({restarts0} -> {c.job(jobid).get('restarts')})")
            path = after["latest"]["completed"]["path"]
            prefix = f"s3://{bucket}/"
            check(path.startswith(prefix), f"the latest checkpoint is not in the bucket: {path}")
            meta = path[len(prefix):].rstrip("/") + "/_metadata"
            check(s3.exists(bucket, meta), f"boto3: no s3://{bucket}/{meta} (latest checkpoint {path})")

            job = c.wait_finished(jobid, timeout=400)
            oracle = oracle_counts(text)
            lines = check_wordcount_output(out, oracle)
            final = c.checkpoints(jobid)["counts"]
            print(f"job {job['state']}, checkpoints {final}; exactly once: {lines} committed lines, "
                  f"{len(oracle)} words, all counts match")


run_test(test)
