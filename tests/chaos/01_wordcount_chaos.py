"""Chaos: wordcount over >= 2,000,000 words (10,000,000 with WEIR_CHAOS_SIZE=large, i.e.
cmake -DWEIR_CHAOS_SIZE=large) with checkpoints every 500 ms and a throttled source, on three task
managers, while this script injects faults at random moments: kill -9 of a random task manager
(and of the job manager once, with HA on), a replacement with the same configuration started each
time; and SIGSTOP of a random task manager for longer than heartbeat.timeout, so that it is
declared lost while alive and the job is restored on the other two, then SIGCONT: the woken
zombie must stop its old tasks and register again without disturbing the running attempt. At
least 5 kills (15 large) and 2 freezes (4 large), and a new checkpoint completes between two faults
so the job makes progress. The job must FINISH and the committed output must equal the oracle
exactly: one line per word occurrence, no duplicate, every count 1..n (tr | sort | uniq -c).
Prints the seed (set WEIR_TEST_CHAOS_SEED to replay one), the faults, the restores and the faults
by kind."""

import os
import random
import time

from weirtest import EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts, run_test

LARGE = os.environ.get("WEIR_CHAOS_SIZE") == "large"
N_WORDS = 10_000_000 if LARGE else 2_000_000
KILLS = 15 if LARGE else 6
FREEZES = 4 if LARGE else 2
RATE = 12000 if LARGE else 4000  # lines per second over all source subtasks
HB_TIMEOUT_S = 3


def latest_completed(c, jobid):
    try:
        latest = c.checkpoints(jobid)["latest"]["completed"]
        return latest["id"] if latest else 0
    except Exception:  # noqa: BLE001 - job manager restarting
        return None


def freeze_and_wake(c, rng, i, jobid):
    """SIGSTOP tm-i until the job manager declared it lost (and, bounded, until the job runs a
    newer attempt elsewhere when tm-i hosted part of it), a little longer, then SIGCONT; waits
    until it registered again."""
    tm_id = f"tm-{i}"
    job = c.job(jobid)
    attempt = job.get("attempt", 0)
    hosted = tm_id in c.job_taskmanagers(jobid)
    c.freeze(c.tms[i])
    frozen_at = time.time()
    c.wait_taskmanager_gone(tm_id, timeout=HB_TIMEOUT_S + 60)
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


def test():
    seed = int(os.environ.get("WEIR_TEST_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"seed {seed}: {N_WORDS} words, {KILLS} kills, {FREEZES} freezes")
    with Cluster("chaos", tms=3, slots=2, checkpoints="500ms", ha=True,
                 conf={"heartbeat.timeout": f"{HB_TIMEOUT_S}s"}) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS, seed=seed)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                         "--output", out, "--rate", str(RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)

        jm_kill_at = rng.randrange(1, KILLS - 1)
        # The freezes go between the first and the last kill (never last: the kills must happen).
        schedule = ["kill"] * KILLS
        for _ in range(FREEZES):
            schedule.insert(rng.randrange(1, len(schedule) - 1), "freeze")
        kills = {"taskmanager": 0, "jobmanager": 0}
        freezes = 0
        restarts = 0
        n_kill = 0
        for k, kind in enumerate(schedule):
            # Progress first: a checkpoint newer than the last fault must complete.
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
                print(f"job reached {job['state']} after {k} faults; stopping the chaos")
                break
            test.last_ckpt = before or 0
            time.sleep(rng.uniform(0.2, 2.5))
            if kind == "freeze":
                c.wait_taskmanagers(len(c.tms), timeout=60)
                # a task manager running part of the job, so that a zombie of it wakes up
                hosts = sorted(c.job_taskmanagers(jobid) & set(c.taskmanager_ids()))
                i = int(rng.choice(hosts).split("-")[1]) if hosts else rng.randrange(len(c.tms))
                print(f"fault {k + 1}: SIGSTOP task manager tm-{i} (last checkpoint {before})",
                      flush=True)
                freeze_and_wake(c, rng, i, jobid)
                freezes += 1
                continue
            restarts_now = c.job(jobid).get("restarts", 0)
            if n_kill == jm_kill_at:
                restarts += restarts_now
                print(f"fault {k + 1}: kill -9 job manager (last checkpoint {before})", flush=True)
                c.kill9(c.jm)
                kills["jobmanager"] += 1
                time.sleep(rng.uniform(0.1, 1.0))
                c.restart_jobmanager()
                test.last_ckpt = 0
            else:
                i = rng.randrange(len(c.tms))
                print(f"fault {k + 1}: kill -9 task manager tm-{i} (last checkpoint {before})",
                      flush=True)
                c.kill9(c.tms[i])
                kills["taskmanager"] += 1
                time.sleep(rng.uniform(0.1, 1.0))
                c.start_taskmanager(index=i)
            n_kill += 1
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=900 if LARGE else 400)
        restarts += job.get("restarts", 0)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        total_kills = kills["taskmanager"] + kills["jobmanager"]
        print(f"kills: {total_kills} (task managers {kills['taskmanager']}, job manager "
              f"{kills['jobmanager']}); restores: {restarts} by the running job managers plus "
              f"{kills['jobmanager']} by a restarted job manager")
        print(f"faults by kind: kill -9 task manager {kills['taskmanager']}, kill -9 job manager "
              f"{kills['jobmanager']}, SIGSTOP/SIGCONT task manager {freezes} "
              f"({total_kills + freezes} in all)")
        check(total_kills >= 5, f"only {total_kills} kills happened before the job finished: raise the size")
        check(kills["jobmanager"] == 1, "the job manager was not killed")
        check(freezes >= 2, f"only {freezes} freezes happened before the job finished: raise the size")
        oracle = oracle_counts(text)
        check(sum(oracle.values()) == N_WORDS, "oracle word count differs from the generator's")
        lines = check_wordcount_output(out, oracle)
        print(f"exactly once: {lines} committed lines, {len(oracle)} words, all counts match")


run_test(test)
