"""Integration: the Kafka source exactly once on its own, on a real Apache Kafka broker, with
kill -9 of task managers at random moments.

Kafka (topic of 6 partitions) -> kafka_wordcount.so --bounded --output-dir -> the exactly-once
file sink, parallelism 3 on 3 task managers of 2 slots, checkpoints every 500 ms, the source
throttled (--rate lines per second per subtask) so that the job runs long enough for the faults.

Input, all written before the job starts (bounded mode reads up to the end offsets of the start):
- text lines (tests/lib/gen_text.py) produced with kcat, in chunks, each spread evenly over the
  partitions;
- between the chunks, transactions of kafka-python's transactional producer (a client weir did not
  write): committed ones, whose lines count, and aborted ones, whose lines hold the word
  XABORTED<n> and must never be counted (the source reads read_committed). So every partition
  holds control markers and aborted batches, and the end offsets the source stops at lie after
  markers.
The oracle is computed here in Python from the committed lines (str.split()), and checked
against what a read_committed kafka-python consumer reads back from the topic.

Faults: KILLS times (4; 8 with WEIR_CHAOS_SIZE=large), after a checkpoint newer than the last
fault completed and a random pause (0.5 to 5 s; to 10 s large: the faults spread over the run),
kill -9 of a random task manager running part of the job, and a replacement started. The job
must FINISH, and then:
- the committed output equals the oracle exactly: one line per word occurrence, for every word
  the counts 1..n (no update lost or repeated), so the last count of a word is its total;
- no word of an aborted transaction appears;
- consumer group G (--group) holds, for every partition, exactly the read_committed end offset
  (the final checkpoint's offsets, committed on its completion; read with kafka-python).
Prints the seed (WEIR_TEST_CHAOS_SEED replays one), the faults and the restarts."""

import os
import random
import time
from collections import Counter

from chaoslib import latest_completed
from kafkatest import Broker, TopicPartition
from weirtest import EXAMPLES, Cluster, check, check_wordcount_output, gen_text, run_test

LARGE = os.environ.get("WEIR_CHAOS_SIZE") == "large"
N_WORDS = 1_000_000 if LARGE else 250_000
KILLS = 8 if LARGE else 4
PAUSE_MAX = 10.0 if LARGE else 5.0  # seconds between a checkpoint after a fault and the next
PARTITIONS = 6
PARALLELISM = 3
RATE = 400  # lines per second per source subtask
CHUNKS = 8  # kcat chunks, with a committed and an aborted transaction after each
TXN_LINES = 60  # lines per transaction
TOPIC = "wc-in"
GROUP = "wc-eo-group"


def produce_input(k, lines, rng):
    """Produces the input (see the docstring); returns the lines that count."""
    producer = k.producer(transactional_id="test-13-input", enable_idempotence=True)
    producer.init_transactions()
    counted = []
    step = (len(lines) + CHUNKS - 1) // CHUNKS
    aborted = 0
    for c in range(CHUNKS):
        chunk = lines[c * step:(c + 1) * step]
        for p in range(PARTITIONS):  # spread evenly, so that no subtask lags far behind
            k.produce_lines(TOPIC, chunk[p::PARTITIONS], partition=p)
        counted += chunk
        committed = [" ".join(rng.choice(chunk).split()[:3] + [f"txn{c}"]) for _ in range(TXN_LINES)]
        producer.begin_transaction()
        for i, ln in enumerate(committed):
            producer.send(TOPIC, value=ln.encode(), partition=i % PARTITIONS)
        producer.commit_transaction()
        counted += committed
        producer.begin_transaction()
        for i in range(TXN_LINES):
            producer.send(TOPIC, value=f"XABORTED{c} never counted {i}".encode(),
                          partition=(i + c) % PARTITIONS)
            aborted += 1
        producer.flush()
        producer.abort_transaction()
    producer.close()
    return counted, aborted


def test():
    seed = int(os.environ.get("WEIR_TEST_CHAOS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"seed {seed}: {N_WORDS} words, {KILLS} kills, {PARTITIONS} partitions, "
          f"parallelism {PARALLELISM}, {RATE} lines/s per source subtask")
    with Broker() as k, Cluster("kafka-source-eo", tms=3, slots=2, checkpoints="500ms",
                                conf={"heartbeat.timeout": "3s"}) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS, seed=seed)
        with open(text, encoding="utf-8") as f:
            lines = [ln for ln in f.read().split("\n") if ln]  # kcat skips empty lines
        k.create_topic(TOPIC, partitions=PARTITIONS)
        t0 = time.time()
        counted, aborted = produce_input(k, lines, rng)
        oracle = Counter(w for ln in counted for w in ln.split())
        check(not any(w.startswith("XABORTED") for w in oracle), "the oracle holds an aborted word")
        # what a client weir did not write reads back: exactly the committed lines
        rows = k.consume_all(TOPIC, isolation="read_committed", timeout=120)
        check(Counter(v for _, v, _, _ in rows) == Counter(counted),
              f"read_committed kafka-python reads {len(rows)} records, {len(counted)} were committed")
        end = k.end_offsets(TOPIC, isolation="read_committed")
        print(f"input: {len(counted)} committed lines ({sum(oracle.values())} words, "
              f"{len(oracle)} distinct), {aborted} aborted, end offsets {end}, produced in "
              f"{time.time() - t0:.1f} s", flush=True)

        out = os.path.join(c.dir, "out")
        t0 = time.time()
        jobid = c.submit("-p", str(PARALLELISM), os.path.join(EXAMPLES, "kafka_wordcount.so"),
                         "--brokers", k.bootstrap, "--input-topic", TOPIC, "--output-dir", out,
                         "--bounded", "--group", GROUP, "--rate", str(RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        kills = 0
        last = 0
        for n in range(KILLS):
            before = None
            deadline = time.time() + 120
            while time.time() < deadline:
                before = latest_completed(c, jobid)
                if c.job(jobid)["state"] in ("FINISHED", "FAILED", "CANCELED"):
                    break
                if before and before > last:
                    break
                time.sleep(0.1)
            job = c.job(jobid)
            if job["state"] not in ("RUNNING", "RESTARTING"):
                check(job["state"] != "FAILED", f"job FAILED: {job.get('message')}")
                print(f"job reached {job['state']} after {kills} kills; stopping the faults")
                break
            last = before or 0
            time.sleep(rng.uniform(0.5, PAUSE_MAX))
            # a task manager running part of the job (a slot runs a subtask of each vertex)
            hosts = sorted(c.job_taskmanagers(jobid) & set(c.taskmanager_ids()))
            i = int(rng.choice(hosts).split("-")[1]) if hosts else rng.randrange(len(c.tms))
            print(f"fault {n + 1} at {time.time() - t0:.1f} s: kill -9 task manager tm-{i} "
                  f"(last checkpoint {before})", flush=True)
            c.kill9(c.tms[i])
            kills += 1
            time.sleep(rng.uniform(0.1, 1.0))
            c.start_taskmanager(index=i)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=900 if LARGE else 400)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        print(f"job FINISHED in {time.time() - t0:.1f} s after {kills} kills, "
              f"{job.get('restarts', 0)} restarts", flush=True)
        check(kills >= KILLS, f"only {kills} kills happened before the job finished: raise the size")
        check(job.get("restarts", 0) >= 1, "no restart happened")

        n_lines = check_wordcount_output(out, oracle)
        for name in os.listdir(out):
            if not name.startswith("."):
                with open(os.path.join(out, name), encoding="utf-8") as f:
                    check("XABORTED" not in f.read(), f"a word of an aborted transaction in {name}")
        print(f"exactly once: {n_lines} committed lines, {len(oracle)} words, all counts 1..n")

        gc = k.consumer(group_id=GROUP)  # reads the group's offsets; never joins it
        try:
            got = {p: gc.committed(TopicPartition(TOPIC, p), timeout_ms=30000)
                   for p in range(PARTITIONS)}
        finally:
            gc.close()
        check(got == end, f"group {GROUP} committed {got}, the read_committed end offsets are {end}")
        print(f"group {GROUP}: committed offsets equal the end offsets {end}")


run_test(test)
