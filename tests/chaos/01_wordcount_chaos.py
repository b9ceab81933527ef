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

from chaoslib import report, run_faults
from weirtest import EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts, run_test

LARGE = os.environ.get("WEIR_CHAOS_SIZE") == "large"
N_WORDS = 10_000_000 if LARGE else 2_000_000
KILLS = 15 if LARGE else 6
FREEZES = 4 if LARGE else 2
RATE = 12000 if LARGE else 4000  # lines per second over all source subtasks
HB_TIMEOUT_S = 3


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

        done = run_faults(c, jobid, rng, KILLS, FREEZES, HB_TIMEOUT_S)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=900 if LARGE else 400)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        total_kills = report(done, job.get("restarts", 0))
        check(total_kills >= 5, f"only {total_kills} kills happened before the job finished: raise the size")
        check(done["jobmanager"] == 1, "the job manager was not killed")
        check(done["freeze"] >= 2, f"only {done['freeze']} freezes happened before the job finished: raise the size")
        oracle = oracle_counts(text)
        check(sum(oracle.values()) == N_WORDS, "oracle word count differs from the generator's")
        lines = check_wordcount_output(out, oracle)
        print(f"exactly once: {lines} committed lines, {len(oracle)} words, all counts match")


run_test(test)
