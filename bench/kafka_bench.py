"""Kafka -> Kafka on a real Apache Kafka broker (deploy/local/kafka.sh): kafka_wordcount reads
lines from a topic (bounded: it finishes at the end offsets seen at start) and writes one record
per word ("word count", keyed by the word) to another topic, with at-least-once and exactly-once
delivery, checkpoints every second, alternating runs. One job manager and two task managers with
one slot each; -p 2; input and output topics with 2 partitions.
Prints one line per run:
  RESULT name=kafka-<delivery> events=<records written> seconds=... cpu_seconds=...
         events_per_core_sec=... broker_cpu_seconds=... markers=<transaction markers>
(cpu_seconds: every weir process and the CLI; the broker's CPU is reported separately), the
median per delivery mode, and kcat's own produce and consume rates on the same broker as the
reference (RESULT name=kcat-produce / kcat-consume, events per second of wall time and per
CPU-second of kcat).
Usage: kafka_bench.py RUNS   (KAFKA_WORDS: input words = output records, default 10,000,000)"""

import os
import resource
import statistics
import subprocess
import sys
import time

import weirtest  # tests/lib, on PYTHONPATH (bench/run.sh)
from kafkatest import Broker, lines_of


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def kcat_rates(k, text, n_lines):
    c0, t0 = children_cpu(), time.time()
    subprocess.run(["kcat", "-P", "-b", k.bootstrap, "-t", "kcat-ref", "-l", text], check=True)
    wall, cpu = time.time() - t0, children_cpu() - c0
    print(f"RESULT name=kcat-produce events={n_lines} seconds={wall:.3f} cpu_seconds={cpu:.3f} "
          f"events_per_core_sec={n_lines / cpu:.0f} events_per_sec={n_lines / wall:.0f}", flush=True)
    c0, t0 = children_cpu(), time.time()
    r = subprocess.run(["kcat", "-C", "-b", k.bootstrap, "-t", "kcat-ref", "-o", "beginning", "-e",
                        "-q", "-f", "x"], check=True, capture_output=True)
    wall, cpu = time.time() - t0, children_cpu() - c0
    got = len(r.stdout)
    print(f"RESULT name=kcat-consume events={got} seconds={wall:.3f} cpu_seconds={cpu:.3f} "
          f"events_per_core_sec={got / cpu:.0f} events_per_sec={got / wall:.0f}", flush=True)


def one_run(k, c, delivery, run, n_words):
    out = f"out-{delivery}-{run}"
    k.create_topic(out, partitions=2)
    pids = c.pids()
    cpu0 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    b0 = weirtest.proc_cpu_seconds(k.pid())
    ch0 = children_cpu()
    t0 = time.time()
    r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", c.address, "run", "-p", "2",
                        os.path.join(weirtest.EXAMPLES, "kafka_wordcount.so"), "--brokers",
                        k.bootstrap, "--input-topic", "lines", "--output-topic", out, "--delivery",
                        delivery, "--bounded"], capture_output=True, text=True, timeout=3600)
    wall = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench kafka-{delivery}: job failed: {r.stdout}{r.stderr}\n{c.log_tail()}")
    cpu = sum(weirtest.proc_cpu_seconds(p) for p in pids) - cpu0 + children_cpu() - ch0
    broker = weirtest.proc_cpu_seconds(k.pid()) - b0
    # One record per input word. The end offsets also count the transaction markers (one per
    # partition and committed transaction), so they may exceed it, never fall short.
    end = sum(k.end_offsets(out, isolation="read_committed").values())
    if end < n_words:
        raise SystemExit(f"bench kafka-{delivery}: {end} offsets written for {n_words} words")
    print(f"RESULT name=kafka-{delivery} events={n_words} seconds={wall:.3f} cpu_seconds={cpu:.3f} "
          f"events_per_core_sec={n_words / cpu:.0f} broker_cpu_seconds={broker:.3f} "
          f"markers={end - n_words}", flush=True)
    return n_words / cpu, n_words, wall, cpu, broker


def main():
    runs = int(sys.argv[1])
    n_words = int(os.environ.get("KAFKA_WORDS", 10_000_000))
    with Broker("bench-kafka") as k:
        text = os.path.join(k.dir, "input.txt")
        weirtest.gen_text(text, n_words, seed=11)
        lines = lines_of(text)
        k.create_topic("lines", partitions=2)
        k.produce_lines("lines", lines, timeout=600)
        kcat_rates(k, text, len(lines))
        with weirtest.Cluster("bench-kafka", tms=2, slots=1, checkpoints="1s") as c:
            results = {"at-least-once": [], "exactly-once": []}
            for run in range(runs):
                for delivery in results:
                    results[delivery].append(one_run(k, c, delivery, run, n_words))
            for delivery, rs in results.items():
                rs.sort()
                med = rs[len(rs) // 2]
                print(f"RESULT name=kafka-{delivery}-median events={med[1]} "
                      f"seconds={statistics.median(r[2] for r in rs):.3f} cpu_seconds={med[3]:.3f} "
                      f"events_per_core_sec={med[0]:.0f} broker_cpu_seconds={med[4]:.3f}", flush=True)


main()
