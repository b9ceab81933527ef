"""Chaos, end to end through Kafka: lines in a topic of a real Apache Kafka broker ->
kafka_wordcount (exactly-once Kafka sink, checkpoints every 500 ms, HA) -> a topic, while faults
are injected at random moments (tests/lib/chaoslib.py): kill -9 of task managers, of the job
manager once, and SIGSTOP/SIGCONT zombies; at least 8 faults (16 with WEIR_CHAOS_SIZE=large).
The input is produced with kcat before the job starts; the job reads it in bounded mode (it
finishes at the end offsets it saw at start) at a limited rate so that the faults fall while it
runs. Checks, with clients weir did not write:
- read with kafka-python at read_committed, the output has exactly one record per input word and
  for every word the counts 1..n (tr | sort | uniq -c is the oracle): no loss, no duplicate;
- read at read_uncommitted there are more records: aborted transactions existed (the faults
  really cut through transactions);
- no transaction of the job stays open (Kafka's kafka-transactions tool), and the last stable
  offset of every output partition equals its end offset.
Prints the seed (WEIR_TEST_CHAOS_SEED replays one)."""

import os
import random
import time

from chaoslib import report, run_faults
from kafkatest import Broker, check_wordcount_records, lines_of
from weirtest import EXAMPLES, Cluster, check, gen_text, oracle_counts, run_test

LARGE = os.environ.get("WEIR_CHAOS_SIZE") == "large"
N_WORDS = 1_500_000 if LARGE else 300_000
KILLS = 12 if LARGE else 6
FREEZES = 4 if LARGE else 2
RATE = 150 if LARGE else 80  # lines per second per source subtask (4 subtasks)
HB_TIMEOUT_S = 3


def test():
    seed = int(os.environ.get("WEIR_TEST_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"seed {seed}: {N_WORDS} words, {KILLS} kills, {FREEZES} freezes")
    with Broker("kafka-chaos") as k, Cluster("kafka-chaos", tms=3, slots=2, checkpoints="500ms",
                                             ha=True,
                                             conf={"heartbeat.timeout": f"{HB_TIMEOUT_S}s"}) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS, seed=seed)
        k.create_topic("lines", partitions=4)
        k.create_topic("counts", partitions=4)
        lines = lines_of(text)
        k.produce_lines("lines", lines)
        print(f"{len(lines)} lines produced with kcat")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "kafka_wordcount.so"), "--brokers",
                         k.bootstrap, "--input-topic", "lines", "--output-topic", "counts",
                         "--delivery", "exactly-once", "--bounded", "--rate", str(RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        done = run_faults(c, jobid, rng, KILLS, FREEZES, HB_TIMEOUT_S)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=900 if LARGE else 500)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        kills = report(done, job.get("restarts", 0))
        check(kills + done["freeze"] >= 8, f"only {kills + done['freeze']} faults happened before "
                                           "the job finished: raise the size")
        check(done["jobmanager"] == 1, "the job manager was not killed")
        check(done["freeze"] >= 2, f"only {done['freeze']} freezes happened: raise the size")

        oracle = oracle_counts(text)
        check(sum(oracle.values()) == N_WORDS, "oracle word count differs from the generator's")
        committed = k.consume_all("counts", isolation="read_committed", timeout=120)
        n = check_wordcount_records(committed, oracle)
        uncommitted = k.consume_all("counts", isolation="read_uncommitted", timeout=120)
        print(f"exactly once: {n} committed records, {len(oracle)} words, all counts match; "
              f"{len(uncommitted) - n} records of aborted transactions seen at read_uncommitted")
        check(len(uncommitted) > n, "no aborted records: the faults did not cut a transaction")
        still_open = k.open_transactions()
        check(not still_open, f"transactions left open: {still_open}")
        lso, hw = (k.end_offsets("counts", isolation=i) for i in ("read_committed",
                                                                   "read_uncommitted"))
        check(lso == hw, f"last stable offsets {lso} behind the end offsets {hw}")


run_test(test)
