"""The fault schedule of the chaos tests (tests/chaos/): kill -9 of task managers (and of the job
manager once, with HA), SIGSTOP/SIGCONT zombies, each at a random moment after a new checkpoint
completed (so the job makes progress between two faults). Used by 01_wordcount_chaos.py and
02_kafka_chaos.py; the tests check the output."""

import time

from weirtest import check


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
