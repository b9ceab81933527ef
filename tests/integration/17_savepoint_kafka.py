"""Savepoints with the Kafka source and the exactly-once Kafka sink, rescaled (issue 9, "Must
show"), on a real Apache Kafka broker, checked with clients weir did not write (kcat produces,
kafka-python reads at read_committed, Kafka's kafka-transactions tool lists transactions).

kafka_wordcount.so --bounded (4 input partitions, throttled per source subtask) -> topic counts,
exactly once, on 2 task managers with checkpoints every 500 ms:

  run 1 at -p 4: POST /jobs/{id}/savepoints {"cancel-job": true}: savepoint A, job CANCELED.
        A savepoint is never notified, so the transactions A pre-committed (one per sink
        subtask) are still open at the broker when the job is gone.
  run 2 at -p 2 from A: subtask k must commit the pending transactions of old subtasks j with
        j mod 2 == k exactly once (those of subtasks 2 and 3, which no longer exist, included)
        and abort the lingering ones; then `weir stop`: savepoint B, job FINISHED.
        Now no transaction is open, the last stable offsets equal the end offsets, and the
        committed records are consistent (per word the counts 1..k, no gap, no duplicate).
  run 3 at -p 3 from B, to the end.

At the end the committed records equal the oracle (tr | sort | uniq -c over the produced text)
exactly: one record per word occurrence, per word the counts 1..n across the three runs; no
transaction open (kafka-transactions), last stable offsets == end offsets."""

import os

from kafkatest import Broker, check_wordcount_prefix, check_wordcount_records, lines_of
from weirtest import EXAMPLES, Cluster, check, gen_text, oracle_counts, run_test

N_WORDS = 16_000  # about 1,270 lines
RATE = 20  # lines per second per source subtask in runs 1 and 2 (-p 4 reads 80 lines/s)
RATE_LAST = 100  # in run 3, which reads the rest (the rate is a job argument, not state)
PARTITIONS = 4
PLUGIN = os.path.join(EXAMPLES, "kafka_wordcount.so")


def job_args(k, out, rate=RATE):
    return [PLUGIN, "--brokers", k.bootstrap, "--input-topic", "lines", "--output-topic", out,
            "--delivery", "exactly-once", "--bounded", "--rate", str(rate)]


def committed_prefix(k, out, oracle, what):
    n = check_wordcount_prefix(k.consume_all(out, timeout=120), oracle)
    total = sum(oracle.values())
    check(0 < n < total, f"{what}: {n} committed records of {total}: the savepoint must fall mid-stream")
    return n


def parallelism(c, jobid):
    return {v["name"]: v["parallelism"] for v in c.job(jobid)["vertices"]}


def test():
    with Broker("savepoint-kafka") as k:
        text = os.path.join(k.dir, "input.txt")
        gen_text(text, N_WORDS, seed=17)
        oracle = oracle_counts(text)
        check(sum(oracle.values()) == N_WORDS, f"oracle counted {sum(oracle.values())} words")
        k.create_topic("lines", partitions=PARTITIONS)
        k.produce_lines("lines", lines_of(text))
        out = "counts"
        k.create_topic(out, partitions=2)
        # The broker creates its transaction log (__transaction_state, 50 partitions) at the first
        # transactional producer: do it now, so that run 1 does not start seconds late while its
        # rate-limited sources already read (the savepoint must fall mid-stream).
        warm = k.producer(transactional_id="test-17-warm-up")
        warm.init_transactions()
        warm.close()
        with Cluster("sp-kafka", tms=2, slots=2, checkpoints="500ms", savepoints=True) as c:
            # run 1: -p 4, savepoint and cancel: its transactions stay pending
            job1 = c.submit("-p", "4", *job_args(k, out))
            c.wait_checkpoints(job1, 2)
            p = parallelism(c, job1)
            check(all(x == 4 for x in p.values()), f"run 1: parallelism {p}")
            rid = c.trigger_savepoint(job1, cancel=True)
            st = c.wait_savepoint(job1, rid)
            check("location" in st.get("operation", {}), f"savepoint with cancel failed: {st}")
            sp_a = st["operation"]["location"]
            check(os.path.isfile(os.path.join(sp_a, "_metadata")), f"{sp_a} has no _metadata")
            end = c.wait_state(job1, {"CANCELED", "FAILED", "FINISHED"}, timeout=60)
            check(end["state"] == "CANCELED", f"run 1 ended {end['state']} after a savepoint with cancel-job")
            pending = k.open_transactions()
            print(f"run 1 (-p 4): savepoint {sp_a} (checkpoint {st.get('checkpoint')}), job CANCELED; "
                  f"{len(pending)} transactions open at the broker: "
                  f"{sorted(t['TransactionalId'] for t in pending)}")

            # run 2: -p 2 from A, stopped with a savepoint
            job2 = c.resume(sp_a, *job_args(k, out), p=2)
            c.wait_checkpoints(job2, 2)
            p = parallelism(c, job2)
            check(all(x == 2 for x in p.values()), f"run 2: parallelism {p}")
            sp_b = c.stop_with_savepoint(job2)
            hw = k.check_settled(out, "run 2 stopped")
            n = committed_prefix(k, out, oracle, "run 2 stopped")
            print(f"run 2 (-p 2) from A, stopped: savepoint {sp_b}; {n} committed records of "
                  f"{sum(oracle.values())} consistent (end offsets {hw}: markers and aborted records "
                  "included), nothing open")

            # run 3: -p 3 from B, to the end
            job3 = c.resume(sp_b, *job_args(k, out, RATE_LAST), p=3)
            end = c.wait_state(job3, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
            check(end["state"] == "FINISHED", f"run 3 ended {end['state']}: {end.get('message')}")
            p = parallelism(c, job3)
            check(all(x == 3 for x in p.values()), f"run 3: parallelism {p}")
            n = check_wordcount_records(k.consume_all(out, timeout=120), oracle)
            hw = k.check_settled(out, "run 3 finished")
            print(f"run 3 (-p 3) from B, FINISHED: {n} records exactly once over 3 runs (-p 4, 2, 3); "
                  f"end offsets {hw} (markers and aborted records included); no transaction open, "
                  "LSO == HW")


run_test(test)
