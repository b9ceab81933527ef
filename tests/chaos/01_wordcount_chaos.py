"""Chaos: wordcount over >= 2,000,000 words (10,000,000 with WEIR_CHAOS_SIZE=large, i.e.
cmake -DWEIR_CHAOS_SIZE=large) with checkpoints every 500 ms and a throttled source, while this
script kill -9s a random task manager at random moments (and the job manager once, with HA on),
starting a replacement with the same configuration each time. At least 5 kills (15 large), and a
new checkpoint completes between two kills so the job makes progress. The job must FINISH and the
committed output must equal the oracle exactly: one line per word occurrence, no duplicate, every
count 1..n (tr | sort | uniq -c). Prints the seed (set WEIR_TEST_CHAOS_SEED to replay one), the kills and the restores."""

import os
import random
import time

from weirtest import EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts, run_test

LARGE = os.environ.get("WEIR_CHAOS_SIZE") == "large"
N_WORDS = 10_000_000 if LARGE else 2_000_000
KILLS = 15 if LARGE else 6
RATE = 12000 if LARGE else 4000  # lines per second over all source subtasks


def latest_completed(c, jobid):
    try:
        latest = c.checkpoints(jobid)["latest"]["completed"]
        return latest["id"] if latest else 0
    except Exception:  # noqa: BLE001 - job manager restarting
        return None


def test():
    seed = int(os.environ.get("WEIR_TEST_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"seed {seed}: {N_WORDS} words, {KILLS} kills")
    with Cluster("chaos", tms=2, slots=2, checkpoints="500ms", ha=True,
                 conf={"heartbeat.timeout": "3s"}) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS, seed=seed)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                         "--output", out, "--rate", str(RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)

        jm_kill_at = rng.randrange(1, KILLS - 1)
        kills = {"taskmanager": 0, "jobmanager": 0}
        restarts = 0
        for k in range(KILLS):
            # Progress first: a checkpoint newer than the last kill must complete.
            before = None
            deadline = time.time() + 120
            while time.time() < deadline:
                before = latest_completed(c, jobid)
                job = c.job(jobid)
                if job["state"] in ("FINISHED", "FAILED", "CANCELED"):
                    break
                if before and before > getattr(test, "last_ckpt", 0):
                    break
                time.sleep(0.1)
            job = c.job(jobid)
            if job["state"] != "RUNNING" and job["state"] != "RESTARTING":
                check(job["state"] != "FAILED", f"job FAILED: {job.get('message')}")
                print(f"job reached {job['state']} after {k} kills; stopping the chaos")
                break
            test.last_ckpt = before or 0
            time.sleep(rng.uniform(0.2, 2.5))
            restarts_now = c.job(jobid).get("restarts", 0)
            if k == jm_kill_at:
                restarts += restarts_now
                print(f"kill {k + 1}: job manager (last checkpoint {before})", flush=True)
                c.kill9(c.jm)
                kills["jobmanager"] += 1
                time.sleep(rng.uniform(0.1, 1.0))
                c.restart_jobmanager()
                test.last_ckpt = 0
            else:
                i = rng.randrange(len(c.tms))
                print(f"kill {k + 1}: task manager tm-{i} (last checkpoint {before})", flush=True)
                c.kill9(c.tms[i])
                kills["taskmanager"] += 1
                time.sleep(rng.uniform(0.1, 1.0))
                c.start_taskmanager(index=i)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=900 if LARGE else 400)
        restarts += job.get("restarts", 0)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        total_kills = kills["taskmanager"] + kills["jobmanager"]
        print(f"kills: {total_kills} (task managers {kills['taskmanager']}, job manager "
              f"{kills['jobmanager']}); restores: {restarts} by the running job managers plus "
              f"{kills['jobmanager']} by a restarted job manager")
        check(total_kills >= 5, f"only {total_kills} kills happened before the job finished: raise the size")
        check(kills["jobmanager"] == 1, "the job manager was not killed")
        oracle = oracle_counts(text)
        check(sum(oracle.values()) == N_WORDS, "oracle word count differs from the generator's")
        lines = check_wordcount_output(out, oracle)
        print(f"exactly once: {lines} committed lines, {len(oracle)} words, all counts match")


run_test(test)
