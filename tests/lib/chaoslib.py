"""The fault schedule of the chaos tests (tests/chaos/): kill -9 of task managers (and of the job
manager once, with HA), SIGSTOP/SIGCONT zombies, each at a random moment after a new checkpoint
completed (so the job makes progress between two faults). Used by 01_wordcount_chaos.py and
02_kafka_chaos.py; the tests check the output. wordcount_chaos() is the whole of
01_wordcount_chaos.py, shared with 04_wordcount_chaos_s3.py (the same run with checkpoints and HA
on S3)."""

import os
import random
import time

from weirtest import EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts


def latest_completed(c, jobid):
    try:
        latest = c.checkpoints(jobid)["latest"]["completed"]
        return latest["id"] if latest else 0
    except Exception:  # noqa: BLE001 - job manager restarting
        return None


def freeze_and_wake(c, rng, i, jobid, hb_timeout_s):
    """SIGSTOP tm-i until the job manager declared it lost (and, bounded, until the job runs a
    newer attempt elsewhere when tm-i hosted part of it), a little longer, then SIGCONT; waits
    until it registered again."""
    tm_id = f"tm-{i}"
    job = c.job(jobid)
    attempt = job.get("attempt", 0)
    hosted = tm_id in c.job_taskmanagers(jobid)
    c.freeze(c.tms[i])
    frozen_at = time.time()
    c.wait_taskmanager_gone(tm_id, timeout=hb_timeout_s + 60)
    lost_after = time.time() - frozen_at
    deadline = time.time() + (30 if hosted else 0)
    while time.time() < deadline:
        job = c.job(jobid)
        if job["state"] != "RESTARTING" and job.get("attempt", 0) > attempt:
            break
        time.sleep(0.1)
    time.sleep(rng.uniform(0.1, 2.0))
    c.thaw(c.tms[i])
    print(f"  {tm_id} declared lost after {lost_after:.1f} s, woken after "
          f"{time.time() - frozen_at:.1f} s (job attempt {c.job(jobid).get('attempt')})", flush=True)
    c.wait_taskmanager_back(tm_id, timeout=60)


def run_faults(c, jobid, rng, kills, freezes, hb_timeout_s, kill_jobmanager=True):
    """Injects `kills` kills (one of them the job manager's when `kill_jobmanager`) and `freezes`
    freezes, in a random order (never a freeze first or last), each after a checkpoint newer than
    the last fault completed. Stops early when the job ends (a FAILED job fails the test).
    Returns {"taskmanager": n, "jobmanager": n, "freeze": n, "restarts": n} where restarts counts
    the restores seen by job managers that were later killed."""
    jm_kill_at = rng.randrange(1, kills - 1) if kill_jobmanager else -1
    schedule = ["kill"] * kills
    for _ in range(freezes):
        schedule.insert(rng.randrange(1, len(schedule) - 1), "freeze")
    done = {"taskmanager": 0, "jobmanager": 0, "freeze": 0, "restarts": 0}
    n_kill = 0
    last_ckpt = 0
    for k, kind in enumerate(schedule):
        # Progress first: a checkpoint newer than the last fault must complete.
        before = None
        deadline = time.time() + 120
        while time.time() < deadline:
            before = latest_completed(c, jobid)
            job = c.job(jobid)
            if job["state"] in ("FINISHED", "FAILED", "CANCELED"):
                break
            if before and before > last_ckpt:
                break
            time.sleep(0.1)
        job = c.job(jobid)
        if job["state"] != "RUNNING" and job["state"] != "RESTARTING":
            check(job["state"] != "FAILED", f"job FAILED: {job.get('message')}")
            print(f"job reached {job['state']} after {k} faults; stopping the chaos")
            break
        last_ckpt = before or 0
        time.sleep(rng.uniform(0.2, 2.5))
        if kind == "freeze":
            c.wait_taskmanagers(len(c.tms), timeout=60)
            # a task manager running part of the job, so that a zombie of it wakes up
            hosts = sorted(c.job_taskmanagers(jobid) & set(c.taskmanager_ids()))
            i = int(rng.choice(hosts).split("-")[1]) if hosts else rng.randrange(len(c.tms))
            print(f"fault {k + 1}: SIGSTOP task manager tm-{i} (last checkpoint {before})",
                  flush=True)
            freeze_and_wake(c, rng, i, jobid, hb_timeout_s)
            done["freeze"] += 1
            continue
        if n_kill == jm_kill_at:
            done["restarts"] += c.job(jobid).get("restarts", 0)
            print(f"fault {k + 1}: kill -9 job manager (last checkpoint {before})", flush=True)
            c.kill9(c.jm)
            done["jobmanager"] += 1
            time.sleep(rng.uniform(0.1, 1.0))
            c.restart_jobmanager()
            last_ckpt = 0
        else:
            i = rng.randrange(len(c.tms))
            print(f"fault {k + 1}: kill -9 task manager tm-{i} (last checkpoint {before})",
                  flush=True)
            c.kill9(c.tms[i])
            done["taskmanager"] += 1
            time.sleep(rng.uniform(0.1, 1.0))
            c.start_taskmanager(index=i)
        n_kill += 1
    return done


def report(done, final_restarts):
    """Prints the faults by kind; returns the number of kills."""
    kills = done["taskmanager"] + done["jobmanager"]
    print(f"kills: {kills} (task managers {done['taskmanager']}, job manager "
          f"{done['jobmanager']}); restores: {done['restarts'] + final_restarts} by the running "
          f"job managers plus {done['jobmanager']} by a restarted job manager")
    print(f"faults by kind: kill -9 task manager {done['taskmanager']}, kill -9 job manager "
          f"{done['jobmanager']}, SIGSTOP/SIGCONT task manager {done['freeze']} "
          f"({kills + done['freeze']} in all)")
    return kills


def wordcount_chaos(name, large, conf=None, tm_conf=None):
    """The wordcount chaos run of 01_wordcount_chaos.py (its docstring): 2,000,000 words
    (10,000,000 when `large`), kills and freezes from run_faults, FINISHED and the committed
    output exact against the oracle. conf / tm_conf: extra job manager / task manager
    configuration (04_wordcount_chaos_s3.py: state.checkpoints.dir and
    high-availability.storageDir on S3, and the s3.* keys). Returns (job, done, checkpoints):
    the job, the faults done and GET /jobs/<id>/checkpoints at the end."""
    n_words = 10_000_000 if large else 2_000_000
    kills = 15 if large else 6
    freezes = 4 if large else 2
    rate = 12000 if large else 4000  # lines per second over all source subtasks
    hb_timeout_s = 3
    seed = int(os.environ.get("WEIR_TEST_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"seed {seed}: {n_words} words, {kills} kills, {freezes} freezes")
    jm_conf = {"heartbeat.timeout": f"{hb_timeout_s}s"}
    jm_conf.update(conf or {})
    with Cluster(name, tms=3, slots=2, checkpoints="500ms", ha=True, conf=jm_conf,
                 tm_conf=tm_conf) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, n_words, seed=seed)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                         "--output", out, "--rate", str(rate))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)

        done = run_faults(c, jobid, rng, kills, freezes, hb_timeout_s)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=900 if large else 400)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        total_kills = report(done, job.get("restarts", 0))
        check(total_kills >= 5, f"only {total_kills} kills happened before the job finished: raise the size")
        check(done["jobmanager"] == 1, "the job manager was not killed")
        check(done["freeze"] >= 2, f"only {done['freeze']} freezes happened before the job finished: raise the size")
        oracle = oracle_counts(text)
        check(sum(oracle.values()) == n_words, "oracle word count differs from the generator's")
        lines = check_wordcount_output(out, oracle)
        print(f"exactly once: {lines} committed lines, {len(oracle)} words, all counts match")
        ck = c.checkpoints(jobid)
        print(f"checkpoints: {ck.get('counts')}")
        return job, done, ck
