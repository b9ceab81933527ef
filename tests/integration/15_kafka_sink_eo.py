"""The exactly-once Kafka sink on a real Apache Kafka broker (connectors/kafka/README.md,
"Sink"), checked with clients weir did not write (kcat produces, kafka-python reads at
read_committed, Kafka's own kafka-transactions tool lists transactions):
  (a) kill points in the sink, each followed by an exact output: a task manager SIGKILLs itself
      kafka-sink-precommitted     pre-commit done, checkpoint not acknowledged
      kafka-sink-commit           checkpoint complete (_metadata), transaction not committed
      kafka-sink-endtxn-sent      restoring: EndTxn of a restored transaction sent, no answer read
      kafka-sink-abort-lingering  restoring: the first leftover aborted, the others not
      (the last two fire while restoring, after the other task manager was killed); after each
      run no transaction of the job is left open and the last stable offsets reach the end;
  (b) the timeout guard: a transaction.timeout.ms shorter than what recovery may take is refused
      at submission with a message that says why;
  (c) a pre-committed transaction aborted on the broker (another producer takes its
      transactional id over, as the broker's timeout would abort it) while its checkpoint is
      complete: the job fails naming the transaction and saying its records are lost; the
      committed output has no duplicate and no gap."""

import os

from kafkatest import Broker, check_wordcount_records, lines_of
from weirtest import EXAMPLES, Cluster, check, gen_text, oracle_counts, run_test, wait_exit

N_WORDS = 40_000
RATE = 250  # lines per second per source subtask: the job spans many checkpoints
PLUGIN = os.path.join(EXAMPLES, "kafka_wordcount.so")


def job_args(k, out, *extra):
    return ["-p", "2", PLUGIN, "--brokers", k.bootstrap, "--input-topic", "lines",
            "--output-topic", out, "--delivery", "exactly-once", "--bounded", "--rate", str(RATE),
            *extra]


def check_clean(k, out):
    still_open = k.open_transactions()
    check(not still_open, f"transactions left open: {still_open}")
    lso, hw = (k.end_offsets(out, isolation=i) for i in ("read_committed", "read_uncommitted"))
    check(lso == hw, f"{out}: last stable offsets {lso} behind the end offsets {hw}")


def run_point(k, point, hit, restore_first, oracle):
    out = f"counts-{point}"
    k.create_topic(out, partitions=2)
    with Cluster(f"kk-{point}", tms=1, slots=2, checkpoints="300ms", ha=True) as c:
        victim = c.start_taskmanager(extra={"debug.kill-at": f"{point}:{hit}"})
        c.wait_taskmanagers(2)
        jobid = c.submit(*job_args(k, out))
        if restore_first:
            # the kill point fires while restoring: make the job restore
            c.wait_checkpoints(jobid, 3)
            c.kill9(c.tms[0])
            c.start_taskmanager(index=0)
        wait_exit(victim, "task manager tm-1")
        c.start_taskmanager(index=1)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(job["state"] == "FINISHED", f"{point}: job ended {job['state']}: {job.get('message')}")
        n = check_wordcount_records(k.consume_all(out, timeout=120), oracle)
        check_clean(k, out)
        print(f"{point}: killed at hit {hit}, {job.get('restarts', 0)} restarts, {n} records "
              "exactly once, nothing left open")


def timeout_guard(k):
    with Cluster("kk-guard", tms=1, slots=2, checkpoints="500ms") as c:
        r = c.cli("run", "-d", *job_args(k, "counts-guard", "--transaction-timeout-ms", "60000"),
                  )
        msg = r.stderr + r.stdout
        check(r.returncode != 0, f"an unsafe transaction timeout was accepted:\n{msg}")
        for part in ("transaction.timeout.ms 60000 is shorter than", "could abort a pre-committed",
                     "raise transaction.timeout.ms"):
            check(part in msg, f"guard message lacks {part!r}:\n{msg}")
        check(not c.get("/jobs")["jobs"], "a refused job was created")
        print(f"timeout guard: {msg.strip().splitlines()[-1]}")


def forced_abort(k, oracle):
    out = "counts-lost"
    k.create_topic(out, partitions=2)
    conf = {"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.attempts": "2",
            "restart-strategy.fixed-delay.delay": "200ms"}
    with Cluster("kk-lost", tms=0, slots=2, checkpoints="300ms", conf=conf) as c:
        victim = c.start_taskmanager(extra={"debug.kill-at": "kafka-sink-commit:3"})
        c.wait_taskmanagers(1)
        jobid = c.submit(*job_args(k, out))
        wait_exit(victim, "task manager tm-0")
        # Checkpoint complete, its transactions not committed, no task manager to restore on.
        ours = [t["TransactionalId"] for t in k.open_transactions(f"weir-{jobid}-.*")]
        check(ours, "no open transaction of the job after the kill")
        for txn_id in ours:
            p = k.producer(transactional_id=txn_id)
            p.init_transactions()  # InitProducerId: the broker aborts the open transaction
            p.close()
        print(f"forced abort: {len(ours)} open transactions taken over and aborted: {ours}")
        c.start_taskmanager(index=0)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
        check(job["state"] == "FAILED", f"job ended {job['state']} after its pre-committed "
                                        "records were aborted")
        logs = c.log_tail(400)
        for part in ("cannot be committed: the broker answered", "its records are lost"):
            check(part in logs or part in (job.get("message") or ""),
                  f"no failure naming the lost transaction ({part!r}):\n{job.get('message')}")
        records = k.consume_all(out, timeout=60)
        seen = {}
        for key, value, _, _ in records:
            seen.setdefault(key, []).append(int(value.rsplit(" ", 1)[1]))
        for w, counts in seen.items():
            check(sorted(counts) == list(range(1, len(counts) + 1)),
                  f"word {w!r}: a gap or a duplicate after the loss: {sorted(counts)[:10]}")
        check(len(records) < sum(oracle.values()), "every record committed although some were lost")
        print(f"forced abort: job FAILED ({job.get('message')}); {len(records)} committed "
              "records without gap or duplicate")


def test():
    with Broker("kafka-sink-eo") as k:
        text = os.path.join(k.dir, "input.txt")
        gen_text(text, N_WORDS, seed=8)
        oracle = oracle_counts(text)
        k.create_topic("lines", partitions=4)
        k.produce_lines("lines", lines_of(text))
        timeout_guard(k)
        for point, hit, restore_first in [("kafka-sink-precommitted", 3, False),
                                          ("kafka-sink-commit", 3, False),
                                          ("kafka-sink-endtxn-sent", 1, True),
                                          ("kafka-sink-abort-lingering", 2, True)]:
            run_point(k, point, hit, restore_first, oracle)
        forced_abort(k, oracle)


run_test(test)
