"""Kafka test harness: a real Apache Kafka broker (deploy/local/kafka.sh) and clients weir did not
write, for the Kafka integration and chaos tests (and the demo and benchmarks). Imported as plain
`import kafkatest`, next to weirtest (ctest puts tests/lib on PYTHONPATH).

    from kafkatest import Broker

    with Broker() as k:                                  # kafka.sh start, on free ports
        k.create_topic("in", partitions=3)
        k.produce_lines("in", ["a b", "c"])              # kcat (librdkafka), batched
        rows = k.consume_all("out", isolation="read_committed")   # kafka-python
        open_txns = [t for t in k.list_transactions() if t["TransactionState"] == "Ongoing"]

Clients, chosen so that no check rests on the client weir itself uses:
- producing input: kcat (Debian), one process per call;
- reading output: kafka-python (PyPI), a pure-Python client that is not librdkafka;
- transactions as the broker sees them: Kafka's own org.apache.kafka.tools.TransactionsCommand
  (the `kafka-transactions` tool), run from the jars kafka.sh caches; each call is a JVM start
  (about 0.6 s), so tests call it a few times, not in loops.

kafka-python lives in a virtual environment outside the repo, ${WEIR_CACHE:-~/.cache/weir}/venv,
made by scripts/python-deps.sh (scripts/install-deps.sh runs it). Importing this module puts that
venv's site-packages on sys.path (kafka-python is pure Python, so the python3 running the test
can use it); if kafka-python is missing there, it runs scripts/python-deps.sh once first.

Every wait is bounded: a test fails with a message instead of hanging.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from weirtest import SRC, TestFailure, check, check_word_prefix, check_word_updates, free_port

KAFKA_VERSION = "4.1.1"
CACHE = os.environ.get("WEIR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "weir")
KAFKA_SH = os.path.join(SRC, "deploy", "local", "kafka.sh")
PROBE = os.path.join(SRC, "deploy", "local", "kafka", "probe.py")
KAFKA_LIBS = os.path.join(CACHE, f"kafka-{KAFKA_VERSION}", "libs")
TOOLS_LOG4J = os.path.join(SRC, "deploy", "local", "kafka", "tools-log4j2.xml")
VENV = os.path.join(CACHE, "venv")

# Transaction states of TransactionsCommand / DescribeTransactions in which a transaction still
# holds back read_committed consumers (the last stable offset) or is about to.
OPEN_STATES = {"Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence"}


def _venv_site_packages():
    own = os.path.join(VENV, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    found = [own] if os.path.isdir(own) else sorted(glob.glob(os.path.join(VENV, "lib", "python3*", "site-packages")))
    return found[0] if found else None


def _import_kafka_python():
    for attempt in range(2):
        site = _venv_site_packages()
        if site and os.path.isdir(os.path.join(site, "kafka")):
            if site not in sys.path:
                sys.path.insert(0, site)
            import kafka  # noqa: F401 (check it loads)
            return
        if attempt == 0:
            script = os.path.join(SRC, "scripts", "python-deps.sh")
            print(f"kafkatest: kafka-python not in {VENV}; running {script}", flush=True)
            r = subprocess.run(["bash", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=600)
            if r.returncode != 0:
                raise TestFailure(f"scripts/python-deps.sh failed (exit {r.returncode}):\n{r.stdout}")
    raise TestFailure(f"kafka-python is not in {VENV} after scripts/python-deps.sh")


_import_kafka_python()
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402


def kafka_tool(main_class, *args, timeout=60, check_rc=True):
    """Runs one of Kafka's tool classes from the cached jars (e.g.
    "org.apache.kafka.tools.TransactionsCommand"); returns the CompletedProcess (text). A short-lived
    JVM: client compiler only, serial GC, warnings to stderr only (tools-log4j2.xml)."""
    check(os.path.isdir(KAFKA_LIBS), f"no Kafka jars in {KAFKA_LIBS}: deploy/local/kafka.sh start fetches them")
    argv = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={TOOLS_LOG4J}", "-cp", os.path.join(KAFKA_LIBS, "*"),
            main_class] + [str(a) for a in args]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check_rc:
        check(r.returncode == 0, f"{main_class.rsplit('.', 1)[-1]} {' '.join(map(str, args))} exited "
                                 f"{r.returncode}:\n{r.stdout}{r.stderr}")
    return r


def process_alive(pid):
    """Whether process pid exists and is not a zombie (an exited JVM stays a zombie, every file
    and socket closed, until pid 1 or a subreaper reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def parse_tool_table(text):
    """Rows of a table printed by Kafka's tools (a header line, then one line per row, columns
    separated by tabs and padded with spaces) as dicts keyed by the header's names."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = [c.strip() for c in lines[0].rstrip("\t").split("\t")]
    rows = []
    for ln in lines[1:]:
        cells = [c.strip() for c in ln.rstrip("\t").split("\t")]
        cells += [""] * (len(header) - len(cells))
        rows.append(dict(zip(header, cells)))
    return rows


class Broker:
    """One Apache Kafka broker (KRaft, broker + controller) started by deploy/local/kafka.sh in a
    fresh directory on a free port, as a context manager:

        with Broker(extra_config={"transaction.max.timeout.ms": "60000"}) as k:
            k.bootstrap            # "127.0.0.1:PORT"

    extra_config: server.properties overrides (KAFKA_EXTRA_CONFIG of kafka.sh). The directory is
    <$WEIR_TEST_TMP or /tmp>/weir-kafka-<name>-XXXXXX (broker.log, kafka.out, server.properties,
    data/). Leaving the block stops the broker (kafka.sh stop); on success the directory is
    removed; on an exception the end of broker.log and kafka.out is printed and the directory is
    kept (its path is printed). stop() / start() in between restart the broker on the same
    directory and port (its topics and records survive); start_seconds is how long the last
    kafka.sh start took."""

    def __init__(self, name=None, extra_config=None):
        if name is None:
            name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"weir-kafka-{name}-", dir=os.environ.get("WEIR_TEST_TMP"))
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.extra_config = dict(extra_config or {})
        self.start_seconds = None
        self._admin = None
        try:
            self.start()
        except BaseException:
            self._close(failed=True)
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self._close(failed=exc_type is not None)
        return False

    def _close(self, failed):
        if failed:
            print(f"--- logs of broker {self.name} ({self.bootstrap}) ---\n{self.log_tail()}", flush=True)
        try:
            self.stop()
        finally:
            if failed:
                print(f"broker files kept in {self.dir}", flush=True)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def kafka_sh(self, *args, timeout=120):
        """Runs deploy/local/kafka.sh with args (strings); returns the CompletedProcess (text)."""
        env = dict(os.environ)
        env["KAFKA_EXTRA_CONFIG"] = "".join(f"{k}={v}\n" for k, v in self.extra_config.items())
        return subprocess.run(["bash", KAFKA_SH] + [str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=timeout)

    def start(self):
        t0 = time.time()
        r = self.kafka_sh("start", self.dir, self.port)
        check(r.returncode == 0, f"kafka.sh start {self.dir} {self.port} exited {r.returncode}:\n{r.stderr}")
        self.start_seconds = time.time() - t0

    def stop(self):
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:  # noqa: BLE001 - the broker may be gone already
                pass
            self._admin = None
        r = self.kafka_sh("stop", self.dir)
        check(r.returncode == 0, f"kafka.sh stop {self.dir} exited {r.returncode}:\n{r.stderr}")

    def pid(self):
        """The broker JVM's pid, or None when it is not running (also when it exited and is not
        reaped yet: a zombie has no command line)."""
        try:
            with open(os.path.join(self.dir, "kafka.pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return pid if b"kafka.Kafka" in f.read() else None
        except (OSError, ValueError):
            return None

    def kill9(self, timeout=30):
        """kill -9 of the broker JVM (no controlled shutdown), waiting until it is gone. start()
        brings it back on the same directory; after a kill -9 that takes about 9 s longer than
        after stop() (the old registration's broker.session.timeout.ms must pass)."""
        pid = self.pid()
        check(pid is not None, f"kill9: no broker running in {self.dir}")
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + timeout
        while process_alive(pid):
            check(time.time() < deadline, f"broker {pid} still there {timeout} s after SIGKILL")
            time.sleep(0.05)

    def log_tail(self, lines=60):
        out = []
        for name, n in (("broker.log", lines), ("kafka.out", 20)):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append(f"--- {name} ---\n" + "".join(f.readlines()[-n:]))
            except OSError:
                pass
        return "\n".join(out)

    def api_versions(self):
        """The broker's ApiVersions answer (deploy/local/kafka/probe.py): {"apis": {"key": [min,
        max]}, "finalized_features": {name: [min, max]}, "supported_features": {...}}."""
        import json
        r = subprocess.run([sys.executable, PROBE, "api-versions", self.bootstrap, "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        check(r.returncode == 0, f"probe.py api-versions {self.bootstrap} exited {r.returncode}: {r.stderr}")
        return json.loads(r.stdout)

    # --- kafka-python ---

    def producer(self, **config):
        """A kafka-python KafkaProducer on this broker (e.g. transactional_id="t")."""
        return KafkaProducer(bootstrap_servers=self.bootstrap, **config)

    def consumer(self, **config):
        """A kafka-python KafkaConsumer on this broker (no group unless config gives one)."""
        config.setdefault("group_id", None)
        config.setdefault("enable_auto_commit", False)
        return KafkaConsumer(bootstrap_servers=self.bootstrap, **config)

    def admin(self):
        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30000)
        return self._admin

    def create_topic(self, name, partitions=1, config=None, timeout=30):
        """Creates a topic (replication 1) with kafka-python's admin client and waits until every
        partition has a leader (its end offset can be read)."""
        self.admin().create_topics([NewTopic(name, partitions, 1, topic_configs=config or {})],
                                   timeout_ms=timeout * 1000)
        deadline = time.time() + timeout
        while True:
            try:
                offs = self.end_offsets(name, timeout=5)
                if len(offs) == partitions:
                    return
            except Exception as e:  # noqa: BLE001 - not ready yet; retried until the deadline
                last = e
            else:
                last = f"{len(offs)} of {partitions} partitions known"
            check(time.time() < deadline, f"topic {name}: partitions without a leader after {timeout} s: {last}")
            time.sleep(0.1)

    def partitions(self, topic, timeout=30):
        """The sorted partition numbers of topic (bounded wait until the broker knows it)."""
        c = self.consumer()
        try:
            return self._wait_partitions(c, topic, timeout)
        finally:
            c.close()

    def end_offsets(self, topic, isolation="read_uncommitted", timeout=30):
        """{partition: end offset}: the high watermark (read_uncommitted) or the last stable offset
        (read_committed, held back by open transactions)."""
        c = self.consumer(isolation_level=isolation)
        try:
            parts = self._wait_partitions(c, topic, timeout)
            tps = [TopicPartition(topic, p) for p in parts]
            offs = c.end_offsets(tps, timeout_ms=timeout * 1000) if tps else {}
            return {tp.partition: off for tp, off in offs.items()}
        finally:
            c.close()

    def _wait_partitions(self, c, topic, timeout):
        deadline = time.time() + timeout
        while True:
            parts = c.partitions_for_topic(topic)
            if parts:
                return sorted(parts)
            check(time.time() < deadline, f"topic {topic} unknown to the broker after {timeout} s")
            time.sleep(0.1)

    def consume_all(self, topic, isolation="read_committed", timeout=60, decode=True):
        """Every record of topic visible now at that isolation level, from the beginning up to the
        end offsets read first (the last stable offset for read_committed: an open transaction
        holds it back), read with kafka-python: a list of (key, value, partition, offset), sorted
        by partition and offset. decode: key and value as UTF-8 str (None stays None), else
        bytes. Fails if the end is not reached within timeout seconds."""
        c = self.consumer(isolation_level=isolation, auto_offset_reset="earliest")
        try:
            tps = [TopicPartition(topic, p) for p in self._wait_partitions(c, topic, timeout)]
            c.assign(tps)
            c.seek_to_beginning(*tps)
            end = c.end_offsets(tps, timeout_ms=timeout * 1000)
            out = []
            deadline = time.time() + timeout
            while True:
                behind = {tp.partition: (c.position(tp), end[tp]) for tp in tps if c.position(tp) < end[tp]}
                if not behind:
                    break
                check(time.time() < deadline, f"consume_all({topic}, {isolation}): (position, end offset) "
                                              f"of partitions short of the end after {timeout} s: {behind}")
                for recs in c.poll(timeout_ms=500).values():
                    for r in recs:
                        k, v = r.key, r.value
                        if decode:
                            k = None if k is None else k.decode()
                            v = None if v is None else v.decode()
                        out.append((k, v, r.partition, r.offset))
            out.sort(key=lambda row: (row[2], row[3]))
            return out
        finally:
            c.close()

    # --- kcat ---

    def produce_lines(self, topic, lines, key=None, partition=None, timeout=120):
        """Produces each line as one record with kcat (librdkafka, idempotent: no duplicates and
        per-partition order kept on retries), in one process; key: the same key on every record
        (default none: each record to a random partition); partition: all into that one.
        Lines must be non-empty and hold no newline (kcat splits on newlines and skips empty
        lines)."""
        lines = list(lines)
        for ln in lines:
            if not ln or "\n" in ln:
                raise ValueError(f"produce_lines: a line must be non-empty without newline: {ln!r}")
        # sticky.partitioning.linger.ms=0: records without a key go to a random partition each
        # (librdkafka's default sticks to one partition per batch: a fast producer then fills a
        # few partitions and leaves the others nearly empty)
        argv = ["kcat", "-P", "-b", self.bootstrap, "-t", topic, "-X", "enable.idempotence=true",
                "-X", "sticky.partitioning.linger.ms=0",
                "-X", f"message.timeout.ms={timeout * 1000 // 2}"]
        if key is not None:
            argv += ["-k", key]
        if partition is not None:
            argv += ["-p", str(partition)]
        data = "".join(ln + "\n" for ln in lines)
        r = subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        check(r.returncode == 0,  # kcat exits 1 when a record's delivery failed
              f"kcat -P -t {topic} ({len(lines)} lines) exited {r.returncode}: {r.stderr[-2000:]}")

    # --- Kafka's kafka-transactions tool (org.apache.kafka.tools.TransactionsCommand) ---

    def transactions_tool(self, *args, check_rc=True, timeout=60):
        return kafka_tool("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server",
                          self.bootstrap, *args, check_rc=check_rc, timeout=timeout)

    def list_transactions(self, pattern=None):
        """Every transactional id the broker's coordinators know (only those matching the regular
        expression pattern, if given: ListTransactions v2), as dicts with the keys
        TransactionalId, Coordinator, ProducerId, TransactionState (`kafka-transactions list`)."""
        args = ["list"] + (["--transactional-id-pattern", pattern] if pattern is not None else [])
        return parse_tool_table(self.transactions_tool(*args).stdout)

    def open_transactions(self, pattern=None):
        """The rows of list_transactions(pattern) whose state is open (OPEN_STATES)."""
        return [t for t in self.list_transactions(pattern) if t["TransactionState"] in OPEN_STATES]

    def describe_transaction(self, transactional_id):
        """`kafka-transactions describe --transactional-id X` as a dict (CoordinatorId,
        TransactionalId, ProducerId, ProducerEpoch, TransactionState, TransactionTimeoutMs,
        CurrentTransactionStartTimeMs, TransactionDurationMs, TopicPartitions), or None if the
        broker does not know the id."""
        r = self.transactions_tool("describe", "--transactional-id", transactional_id, check_rc=False)
        if r.returncode != 0 and "could not be found" in r.stdout + r.stderr:
            return None
        check(r.returncode == 0, f"kafka-transactions describe {transactional_id} exited {r.returncode}:\n"
                                 f"{r.stdout}{r.stderr}")
        rows = parse_tool_table(r.stdout)
        check(len(rows) == 1, f"kafka-transactions describe {transactional_id}: expected one row:\n{r.stdout}")
        return rows[0]

    def check_settled(self, topic, what=""):
        """No transaction is open (kafka-transactions list) and the last stable offsets of topic
        equal its end offsets (nothing holds read_committed consumers back). Returns the sum of
        the end offsets."""
        still_open = self.open_transactions()
        check(not still_open, f"{what}: transactions left open: {still_open}")
        lso, hw = (self.end_offsets(topic, isolation=i) for i in ("read_committed", "read_uncommitted"))
        check(lso == hw, f"{what}: {topic}: last stable offsets {lso} behind the end offsets {hw}")
        return sum(hw.values())

    def abort_transaction(self, topic, partition, start_offset):
        """Aborts the open transaction that wrote topic-partition from start_offset on
        (`kafka-transactions abort`: finds its producer with DescribeProducers and writes the
        abort marker), as an operator would for a hanging transaction."""
        self.transactions_tool("abort", "--topic", topic, "--partition", partition,
                               "--start-offset", start_offset)

def lines_of(path):
    """The non-empty lines of a text file (what produce_lines sends: kcat skips empty lines)."""
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f if ln.strip()]


def word_updates(records):
    """{word: [counts]} of kafka_wordcount's output records ((key, value, partition, offset) rows
    as consume_all returns them; key the word, value "word count", checked)."""
    from collections import defaultdict
    seen = defaultdict(list)
    for key, value, part, off in records:
        word, n = value.rsplit(" ", 1)
        check(key == word, f"record at {part}/{off}: key {key!r} but value {value!r}")
        seen[word].append(int(n))
    return seen


def check_wordcount_records(records, oracle):
    """Exactly-once check of kafka_wordcount's output read back from Kafka: one record per word
    occurrence, key the word, value "word count"; for every word the counts are exactly 1..n
    (nothing lost, nothing duplicated). records: (key, value, partition, offset) rows as
    consume_all returns them. Returns the number of records."""
    check_word_updates(word_updates(records), len(records), oracle, "records")
    return len(records)


def check_wordcount_prefix(records, oracle):
    """The check of kafka_wordcount's committed output part way through a job (e.g. after a stop
    with a savepoint): for every word the counts are 1..k, k <= the oracle's (no gap, no
    duplicate; weirtest.check_word_prefix). Returns the number of records."""
    return check_word_prefix(word_updates(records), oracle, "records")
