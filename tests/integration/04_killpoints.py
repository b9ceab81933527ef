"""Kill points: a task manager SIGKILLs itself (debug.kill-at) at an exact step of the checkpoint
protocol, a replacement with the same configuration (without the kill point) is started, and the
job must FINISH with exactly-once output (checked against tr | sort | uniq -c):
  (a) barrier-before-ack    snapshot taken, acknowledgement not sent
  (b) notify-before-commit  _metadata written and notify received, nothing committed
  (c) commit-after-rename   during commit: one pending file renamed, the rest not
  (d) jm-after-metadata     the job manager dies after writing _metadata, before notifying
                            (HA on: a new job manager resumes the job)
Each point fires on its 3rd hit, so earlier checkpoints have completed and committed output."""

import os

from weirtest import (EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts,
                      run_test, wait_exit)

N_WORDS = 300_000
RATE = 3000  # lines/s over all source subtasks: the job spans several checkpoints


def run_point(point, text, oracle):
    jm_point = {"debug.kill-at": f"{point}:3"} if point == "jm-after-metadata" else {}
    with Cluster(f"kp-{point}", tms=2 if jm_point else 1, slots=2, checkpoints="300ms",
                 ha=True, conf=jm_point) as c:
        victim = None
        if point != "jm-after-metadata":
            # tm-1 carries the kill point
            victim = c.start_taskmanager(extra={"debug.kill-at": f"{point}:3"})
            c.wait_taskmanagers(2)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                         "--output", out, "--rate", str(RATE))
        if point == "jm-after-metadata":
            wait_exit(c.jm, "the job manager")
            del c.conf["debug.kill-at"]
            c.restart_jobmanager()
        else:
            wait_exit(victim, "task manager tm-1")
            c.start_taskmanager(index=1)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(job["state"] == "FINISHED", f"{point}: job ended {job['state']}: {job.get('message')}")
        lines = check_wordcount_output(out, oracle)
        print(f"{point}: killed at its 3rd hit, job restarted ({job.get('restarts', 0)} restarts "
              f"seen by the final job manager), {lines} lines exactly once")


def test():
    import tempfile
    d = tempfile.mkdtemp(prefix="weir-kp-text-", dir=os.environ.get("WEIR_TEST_TMP"))
    text = os.path.join(d, "input.txt")
    gen_text(text, N_WORDS, seed=4)
    oracle = oracle_counts(text)
    for point in ["barrier-before-ack", "notify-before-commit", "commit-after-rename",
                  "jm-after-metadata"]:
        run_point(point, text, oracle)
    import shutil
    shutil.rmtree(d, ignore_errors=True)


run_test(test)
