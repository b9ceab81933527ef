"""Integration: the real Apache Kafka broker of deploy/local/kafka.sh and the Kafka harness
(tests/lib/kafkatest.py), checked with clients weir did not write.

- The broker answers ApiVersions with the version ranges and the finalized transaction.version
  that docs/kafka.md records (the Kafka connector's protocol module relies on them).
- KAFKA_EXTRA_CONFIG reaches the broker (its config dump in broker.log shows the override, and
  the broker acts on it: see the timed-out transaction below).
- kcat -> kafka-python: 3000 lines produced with kcat (half without key, half with one key) into
  3 partitions come back exactly once through a read_committed kafka-python consumer, in order
  within each partition, keyed ones in one partition with their key.
- Transactions with kafka-python's transactional producer: one committed, one aborted. While the
  second is open, `kafka-transactions list/describe` shows it Ongoing on both partitions (list
  with --transactional-id-pattern finds it, and only it) and a
  read_committed consumer stops before it; after the abort, read_committed sees exactly the
  committed records, read_uncommitted the committed and the aborted ones, the high watermarks
  count one control marker per partition and transaction, and no transaction stays open.
- A producer that dies inside a transaction (transaction.timeout.ms 3 s) leaves it Ongoing until
  the broker aborts it on its own (the cleanup interval is 1 s here by KAFKA_EXTRA_CONFIG):
  CompleteAbort within 30 s (broker.log says why), nothing of it visible to read_committed.
- The kafka.sh contract: start on a DIR whose broker runs fails naming DIR and the pid; start on a
  PORT in use and with a bad PORT fail with a message; stop ends the JVM and frees the port; stop
  again (and on a missing DIR) exits 0; start again on the same DIR keeps the topics and records.
"""

import os
import socket
import subprocess
import sys
import time

from kafkatest import OPEN_STATES, Broker
from weirtest import check, free_port, run_test

N_LINES = 3000
N_TXN = 100
TXN_ID = "weir-test-12"
DEAD_TXN_ID = "weir-test-12-dead"

# What docs/kafka.md ("The broker") records for Apache Kafka 4.1.1: [min, max] per API key.
EXPECTED_APIS = {
    3: ("Metadata", [0, 13]),
    10: ("FindCoordinator", [0, 6]),
    18: ("ApiVersions", [0, 4]),
    22: ("InitProducerId", [0, 5]),
    26: ("EndTxn", [0, 5]),
    65: ("DescribeTransactions", [0, 0]),
    66: ("ListTransactions", [0, 2]),
}


def leave_transaction_open(bootstrap, tid, topic):
    """Child process: begins a transaction, writes 10 records, flushes, and dies without ending
    it (os._exit), as a crashed producer."""
    from kafkatest import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid, transaction_timeout_ms=3000)
    p.init_transactions()
    p.begin_transaction()
    for i in range(10):
        p.send(topic, value=f"dead-{i}".encode(), partition=i % 2)
    p.flush()
    print("open", flush=True)
    os._exit(0)


def wait_transaction_state(k, tid, states, timeout):
    deadline = time.time() + timeout
    while True:
        d = k.describe_transaction(tid)
        if d is not None and d["TransactionState"] in states:
            return d
        check(time.time() < deadline, f"transaction {tid} not in {states} after {timeout} s: {d}")
        time.sleep(0.5)


def port_open(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def check_api_versions(k):
    av = k.api_versions()
    for key, (name, want) in EXPECTED_APIS.items():
        got = av["apis"].get(str(key))
        check(got == want, f"{name} ({key}): broker supports {got}, docs/kafka.md records {want}; "
                           "update the docs (and the Kafka connector) with the broker version")
    tv = av["finalized_features"].get("transaction.version")
    check(tv == [2, 2], f"finalized transaction.version is {tv}, docs/kafka.md records 2 (KIP-890)")


def check_kcat_roundtrip(k):
    lines = [f"line-{i:05d} the quick brown fox {i % 7}" for i in range(N_LINES)]
    k.create_topic("lines", partitions=3)
    half = N_LINES // 2
    k.produce_lines("lines", lines[:half])
    k.produce_lines("lines", lines[half:], key="k1")
    rows = k.consume_all("lines", isolation="read_committed")
    values = [v for _, v, _, _ in rows]
    check(len(values) == N_LINES and sorted(values) == sorted(lines),
          f"read back {len(values)} records ({len(set(values))} distinct), produced {N_LINES}")
    index = {ln: i for i, ln in enumerate(lines)}
    for part in {p for _, _, p, _ in rows}:
        prow = [r for r in rows if r[2] == part]
        check([r[3] for r in prow] == list(range(len(prow))),
              f"partition {part}: offsets are not 0..{len(prow) - 1} (a record lost or extra)")
        order = [index[r[1]] for r in prow]
        check(order == sorted(order), f"partition {part}: records out of production order")
    keyed = [r for r in rows if index[r[1]] >= half]
    check(all(r[0] == "k1" for r in keyed), "a record of the keyed half came back without key k1")
    check(all(r[0] is None for r in rows if index[r[1]] < half), "a record of the unkeyed half has a key")
    check(len({r[2] for r in keyed}) == 1, f"key k1 in several partitions: {sorted({r[2] for r in keyed})}")
    check(sum(k.end_offsets("lines").values()) == N_LINES, f"end offsets {k.end_offsets('lines')}")
    return rows


def check_transactions(k):
    k.create_topic("txn", partitions=2)
    p = k.producer(transactional_id=TXN_ID)
    p.init_transactions()
    committed = [f"committed-{i}" for i in range(N_TXN)]
    aborted = [f"aborted-{i}" for i in range(N_TXN)]
    p.begin_transaction()
    for i, v in enumerate(committed):
        p.send("txn", value=v.encode(), partition=i % 2)
    p.commit_transaction()
    p.begin_transaction()
    for i, v in enumerate(aborted):
        p.send("txn", value=v.encode(), partition=i % 2)
    p.flush()

    # open: the tool sees it, read_committed stops before it
    open_now = {t["TransactionalId"]: t["TransactionState"] for t in k.open_transactions()}
    check(open_now.get(TXN_ID) == "Ongoing", f"kafka-transactions list while open: {open_now}")
    ours = [t["TransactionalId"] for t in k.list_transactions(pattern="weir-test-1[2]")]
    other = k.list_transactions(pattern="other-.*")
    check(ours == [TXN_ID] and other == [],
          f"kafka-transactions list --transactional-id-pattern: {ours} for 'weir-test-1[2]', {other} for 'other-.*'")
    d = k.describe_transaction(TXN_ID)
    check(d["TransactionState"] == "Ongoing" and set(d["TopicPartitions"].split(",")) == {"txn-0", "txn-1"},
          f"kafka-transactions describe while open: {d}")
    rc = [v for _, v, _, _ in k.consume_all("txn", isolation="read_committed")]
    check(sorted(rc) == sorted(committed), f"read_committed with a transaction open: {len(rc)} records")

    p.abort_transaction()
    p.close()
    rc = [v for _, v, _, _ in k.consume_all("txn", isolation="read_committed")]
    check(sorted(rc) == sorted(committed),
          f"read_committed: {len(rc)} records, {len(set(rc) & set(aborted))} of them aborted ones")
    ru = [v for _, v, _, _ in k.consume_all("txn", isolation="read_uncommitted")]
    check(sorted(ru) == sorted(committed + aborted), f"read_uncommitted: {len(ru)} records, expected {2 * N_TXN}")
    hw = k.end_offsets("txn")
    check(hw == {0: N_TXN + 2, 1: N_TXN + 2},
          f"high watermarks {hw}: expected {N_TXN} records + a commit and an abort marker per partition")
    # no transaction stays open (the abort's markers are written right after EndTxn's answer)
    deadline = time.time() + 30
    while True:
        txns = {t["TransactionalId"]: t["TransactionState"] for t in k.list_transactions()}
        if not set(txns.values()) & OPEN_STATES:
            break
        check(time.time() < deadline, f"transactions still open 30 s after the abort: {txns}")
        time.sleep(0.5)
    check(txns.get(TXN_ID) == "CompleteAbort", f"kafka-transactions list after the abort: {txns}")


def check_broker_aborts_dead_transaction(k):
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--leave-open", k.bootstrap,
                            DEAD_TXN_ID, "txn"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
    check(child.returncode == 0 and "open" in child.stdout, f"the dying producer: {child.stdout}")
    t0 = time.time()
    d = k.describe_transaction(DEAD_TXN_ID)
    check(d is not None and d["TransactionState"] in OPEN_STATES | {"CompleteAbort"},
          f"the dead producer's transaction: {d}")
    d = wait_transaction_state(k, DEAD_TXN_ID, {"CompleteAbort"}, timeout=30)
    print(f"the broker aborted the dead producer's transaction within {time.time() - t0:.1f} s", flush=True)
    with open(os.path.join(k.dir, "broker.log")) as f:
        check(f"Completed rollback of ongoing transaction for transactionalId {DEAD_TXN_ID} due to timeout"
              in f.read(), "broker.log does not say the broker aborted the timed-out transaction")
    rc = [v for _, v, _, _ in k.consume_all("txn", isolation="read_committed")]
    check(not [v for v in rc if v.startswith("dead-")] and len(rc) == N_TXN,
          f"read_committed after the timeout abort: {len(rc)} records")
    ru = [v for _, v, _, _ in k.consume_all("txn", isolation="read_uncommitted")]
    check(len([v for v in ru if v.startswith("dead-")]) == 10, "the dead producer's records are not in the log")
    check(not k.open_transactions(), f"open transactions after the timeout abort: {k.open_transactions()}")


def check_script_contract(k, lines_rows):
    pid = k.pid()
    check(pid is not None, "no broker pid in kafka.pid")
    r = k.kafka_sh("start", k.dir, free_port())
    check(r.returncode != 0 and f"already running in {k.dir} (pid {pid})" in r.stderr,
          f"kafka.sh start on a running DIR: exit {r.returncode}, stderr {r.stderr!r}")
    other = os.path.join(k.dir, "other")
    r = k.kafka_sh("start", other, k.port)
    check(r.returncode != 0 and f"port {k.port} on 127.0.0.1 is already in use" in r.stderr,
          f"kafka.sh start on a PORT in use: exit {r.returncode}, stderr {r.stderr!r}")
    r = k.kafka_sh("start", other, "80x")
    check(r.returncode != 0 and "PORT must be a TCP port number, got '80x'" in r.stderr,
          f"kafka.sh start with a bad PORT: exit {r.returncode}, stderr {r.stderr!r}")
    r = k.kafka_sh("stop")
    check(r.returncode == 2 and "usage:" in r.stderr, f"kafka.sh stop without DIR: {r.returncode} {r.stderr!r}")

    t0 = time.time()
    k.stop()
    stop_s = time.time() - t0
    check(not os.path.exists(f"/proc/{pid}"), f"broker pid {pid} still alive after kafka.sh stop")
    check(not port_open(k.port), f"port {k.port} still accepts connections after kafka.sh stop")
    check(not os.path.exists(os.path.join(k.dir, "kafka.pid")), "kafka.pid left after stop")
    r = k.kafka_sh("stop", k.dir)
    check(r.returncode == 0, f"kafka.sh stop with no broker: exit {r.returncode} {r.stderr}")
    r = k.kafka_sh("stop", os.path.join(k.dir, "missing"))
    check(r.returncode == 0, f"kafka.sh stop on a missing DIR: exit {r.returncode} {r.stderr}")

    k.start()
    print(f"kafka.sh stop took {stop_s:.1f} s; start on the same DIR {k.start_seconds:.1f} s", flush=True)
    check(k.pid() is not None and k.pid() != pid, "no new broker after the second start")
    again = k.consume_all("lines", isolation="read_committed")
    check(again == lines_rows, f"after a restart on the same DIR: {len(again)} records of {len(lines_rows)}")


def test():
    extra = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000"}
    with Broker(extra_config=extra) as k:
        print(f"broker {k.bootstrap} started in {k.start_seconds:.1f} s (dir {k.dir})", flush=True)
        with open(os.path.join(k.dir, "broker.log")) as f:
            log = f.read()
        check("transaction.abort.timed.out.transaction.cleanup.interval.ms = 1000" in log,
              "broker.log has no config dump with the KAFKA_EXTRA_CONFIG override")
        check("transaction.max.timeout.ms = 900000" in log, "transaction.max.timeout.ms is not Kafka's default")
        check_api_versions(k)
        rows = check_kcat_roundtrip(k)
        check_transactions(k)
        check_broker_aborts_dead_transaction(k)
        check_script_contract(k, rows)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--leave-open":
        leave_transaction_open(*sys.argv[2:])
    run_test(test)
