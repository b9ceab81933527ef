"""Integration: the Kafka source's options on a real Apache Kafka broker, through the test plugin
tests/plugins/kafka_probe.c (any source options -> one line per record "<key hex>|<value>|<ts>"
into the exactly-once file sink). Input written with kafka-python (timestamps and keys chosen
here), expectations written out here.

1. Startup modes, bounded (1 partition: old-0..4 at timestamps 1000..1004 ms, group G committed at
   offset 3 by kafka-python, then new-0..4 at 2000..2004): earliest-offset reads all 10 with their
   Kafka timestamps; latest-offset none; timestamp 2000 new-*, 1003 from old-3 on, 5000 none;
   group-offsets G from offset 3 on (and G holds 10 afterwards: the source commits on
   completion); group-offsets of a group without offsets from the earliest.
2. Formats: key.format raw/json, value.format json/string/raw, a tombstone (nil); a key that is
   not JSON and a value that is not UTF-8 fail the job with a message naming topic, partition,
   offset and format.
3. Unbounded with partition discovery (1 s): records of partitions added while the job runs, and
   of a listed topic that did not exist at the start, are read from their earliest offset; a
   kill -9 of a task manager restores from a checkpoint (the state lists the partitions); every
   record exactly once.
4. Options: an unknown option, a bad value and a reserved librdkafka property are refused (at
   submission, or by the task) with the one-line message naming the operator and the option.
5. A source with group.id is canceled within the job manager's cancel window while the broker is
   frozen (SIGSTOP) with group commits in flight."""

import os
import signal
import time

from kafkatest import Broker, KafkaProducer, TopicPartition  # puts kafka-python on sys.path
from kafka.admin import NewPartitions  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402
from weirtest import TEST_PLUGINS, Cluster, check, run_test

PROBE = os.path.join(TEST_PLUGINS, "kafka_probe.so")


def committed_lines(out):
    lines = []
    if not os.path.isdir(out):
        return lines
    for name in sorted(os.listdir(out)):
        if name.startswith("."):
            continue
        with open(os.path.join(out, name), encoding="utf-8") as f:
            lines += [ln.rstrip("\n") for ln in f]
    return lines


class Probe:
    def __init__(self, c, k):
        self.c, self.k, self.n = c, k, 0

    def start(self, opts, parallelism=1):
        self.n += 1
        out = os.path.join(self.c.dir, f"out-{self.n}")
        args = ["-p", str(parallelism), PROBE, "--out", out, "-o", f"bootstrap.servers={self.k.bootstrap}"]
        for key, value in opts.items():
            args += ["-o", f"{key}={value}"]
        return self.c.submit(*args), out

    def run(self, opts, parallelism=1):
        """Runs a bounded probe job to its end; returns (job, committed lines)."""
        jobid, out = self.start(opts, parallelism)
        job = self.c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
        return job, committed_lines(out)

    def lines(self, opts):
        job, lines = self.run(dict(opts, **{"scan.bounded.mode": "latest-offset"}))
        check(job["state"] == "FINISHED", f"{opts}: job {job['state']}: {job.get('message')}")
        return lines

    def fails(self, opts, *wanted):
        """The job is refused at submission, or FAILS: the message holds every wanted text."""
        self.n += 1
        out = os.path.join(self.c.dir, f"out-{self.n}")
        args = [PROBE, "--out", out, "-o", f"bootstrap.servers={self.k.bootstrap}"]
        for key, value in opts.items():
            args += ["-o", f"{key}={value}"]
        r = self.c.cli("run", "-d", *args)
        if r.returncode != 0:  # refused when submitted
            msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        else:
            jobid = next(ln.split()[-1] for ln in r.stdout.splitlines()
                         if ln.startswith("Job has been submitted with JobID "))
            job = self.c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
            check(job["state"] == "FAILED", f"{opts}: job {job['state']}, expected FAILED")
            msg = job.get("message") or ""
        for w in wanted:
            check(w in msg, f"{opts}: message {msg!r} lacks {w!r}")
        check("\n" not in msg, f"message spans lines: {msg!r}")
        return msg


def startup_modes(k, probe):
    topic = "modes"
    k.create_topic(topic, partitions=1)
    p = KafkaProducer(bootstrap_servers=k.bootstrap)
    for i in range(5):
        p.send(topic, value=f"old-{i}".encode(), partition=0, timestamp_ms=1000 + i)
    p.flush()
    g = k.consumer(group_id="G")
    g.commit({TopicPartition(topic, 0): OffsetAndMetadata(3, "", -1)})
    g.close()
    for i in range(5):
        p.send(topic, value=f"new-{i}".encode(), partition=0, timestamp_ms=2000 + i)
    p.flush()
    p.close()
    old = [f"|s:old-{i}|{1000 + i}" for i in range(5)]
    new = [f"|s:new-{i}|{2000 + i}" for i in range(5)]
    base = {"topic": topic}
    cases = [
        ({}, old + new),
        ({"scan.startup.mode": "earliest-offset"}, old + new),
        ({"scan.startup.mode": "latest-offset"}, []),
        ({"scan.startup.mode": "timestamp", "scan.startup.timestamp-millis": "2000"}, new),
        ({"scan.startup.mode": "timestamp", "scan.startup.timestamp-millis": "1003"}, old[3:] + new),
        ({"scan.startup.mode": "timestamp", "scan.startup.timestamp-millis": "5000"}, []),
        ({"scan.startup.mode": "group-offsets", "group.id": "G"}, old[3:] + new),
        ({"scan.startup.mode": "group-offsets", "group.id": "no-offsets-yet"}, old + new),
    ]
    for opts, want in cases:
        got = probe.lines(dict(base, **opts))
        check(got == want, f"{opts}: read {got}, expected {want}")
        print(f"  {opts or 'default'}: {len(got)} records as expected", flush=True)
    g = k.consumer(group_id="G")
    off = g.committed(TopicPartition(topic, 0), timeout_ms=30000)
    g.close()
    check(off == 10, f"group G holds offset {off} after the group-offsets job, expected 10")


def formats(k, probe):
    topic = "fmt"
    k.create_topic(topic, partitions=1)
    p = KafkaProducer(bootstrap_servers=k.bootstrap)
    p.send(topic, key=b"k1", value=b'{"a": [1, 2.5, "x"], "b": null, "c": {"d": true}}',
           partition=0, timestamp_ms=7)
    p.send(topic, key=b"gone", value=None, partition=0, timestamp_ms=8)  # a tombstone
    p.send(topic, key=b'{"id": 7}', value=b'"just a string"', partition=0, timestamp_ms=9)
    p.send(topic, key=b"k3", value=b"\xff\xfe", partition=0, timestamp_ms=10)
    p.flush()
    p.close()
    # value.format raw: bin of the bytes; the tombstone nil
    got = probe.lines({"topic": topic, "value.format": "raw"})
    want = ["6b31|b:" + b'{"a": [1, 2.5, "x"], "b": null, "c": {"d": true}}'.hex() + "|7", "676f6e65|nil|8",
            b'{"id": 7}'.hex() + "|b:" + b'"just a string"'.hex() + "|9", "6b33|b:fffe|10"]
    check(got == want, f"raw: {got}")
    # value.format json up to the record that is not JSON: the job fails naming it
    msg = probe.fails({"topic": topic, "value.format": "json", "scan.bounded.mode": "latest-offset"},
                      "Kafka source 'src': record fmt-0 offset 3: value (value.format json): "
                      "JSON error at line 1 column 1 (byte 0, at byte 0xff)")
    print(f"  json value error: {msg}", flush=True)
    msg = probe.fails({"topic": topic, "scan.bounded.mode": "latest-offset"},
                      "Kafka source 'src': record fmt-0 offset 3: value (value.format string): "
                      "not UTF-8 at byte 0 of 2 (byte 0xff)")
    print(f"  string value error: {msg}", flush=True)
    msg = probe.fails({"topic": topic, "key.format": "json", "value.format": "raw",
                       "scan.bounded.mode": "latest-offset"},
                      "record fmt-0 offset 0: key (key.format json): JSON error at line 1 column 1 "
                      "(byte 0, at 'k')")
    print(f"  json key error: {msg}", flush=True)
    # the JSON documents themselves (a topic holding only JSON)
    topic = "fmt-json"
    k.create_topic(topic, partitions=1)
    p = KafkaProducer(bootstrap_servers=k.bootstrap)
    p.send(topic, key=b'{"id": 7}', value=b'{"a": [1, -2, 2.5, "x"], "b": null, "c": {"d": true}}',
           partition=0, timestamp_ms=11)
    p.send(topic, key=b'"k"', value=b'18446744073709551615', partition=0, timestamp_ms=12)
    p.flush()
    p.close()
    got = probe.lines({"topic": topic, "key.format": "json", "value.format": "json"})
    # keys: the msgpack encodings {"id": 7} = 81 a2 'id' 07 and "k" = a1 'k'; values as msgpack-c
    # prints them (maps with "=>", doubles with %f); 2^64-1 stays an unsigned integer
    want = ['81a2696407|j:{"a"=>[1, -2, 2.500000, "x"], "b"=>nil, "c"=>{"d"=>true}}|11',
            "a16b|j:18446744073709551615|12"]
    check(got == want, f"json: {got}")
    print("  formats as expected", flush=True)


def discovery(k, c, probe):
    topic = "grow"
    k.create_topic(topic, partitions=2)
    sent = []

    def produce(tag, partitions, to=topic):
        lines = [f"{tag}-p{p}-{i}" for p in partitions for i in range(20)]
        for p in partitions:
            k.produce_lines(to, [ln for ln in lines if f"-p{p}-" in ln], partition=p)
        sent.extend(lines)

    produce("a", [0, 1])
    # "later" does not exist yet: the source starts without it and reads it once it appears
    jobid, out = probe.start({"topic": f"{topic},later", "scan.topic-partition-discovery.interval": "1000",
                              "scan.startup.mode": "latest-offset"}, parallelism=2)
    c.wait_state(jobid, {"RUNNING"}, timeout=60)
    c.wait_checkpoints(jobid, 2)
    del sent[:]  # latest-offset: what was there before the start is not read

    def wait_for(n, what):
        deadline = time.time() + 60
        while time.time() < deadline:
            got = committed_lines(out)
            if len(got) >= n:
                return got
            job = c.job(jobid)
            check(job["state"] in ("RUNNING", "RESTARTING", "CREATED"), f"job {job['state']}: {job.get('message')}")
            time.sleep(0.2)
        raise AssertionError(f"{what}: {len(committed_lines(out))} of {n} lines after 60 s")

    produce("b", [0, 1])
    wait_for(len(sent), "records of the first partitions")
    k.admin().create_partitions({topic: NewPartitions(4)})
    produce("c", [2, 3])  # partitions created after the start: read from their earliest offset
    wait_for(len(sent), "records of the added partitions")
    k.create_topic("later", partitions=2)
    produce("e", [0, 1], to="later")
    wait_for(len(sent), "records of a topic created after the start")
    print("  added partitions and a topic created later discovered", flush=True)
    hosts = sorted(c.job_taskmanagers(jobid))
    i = int(hosts[0].split("-")[1])
    c.kill9(c.tms[i])
    c.start_taskmanager(index=i)
    produce("d", [0, 1, 2, 3])
    got = wait_for(len(sent), "records after a restore")
    time.sleep(2)  # nothing more may come
    c.cli("cancel", jobid, check_rc=0)
    c.wait_state(jobid, {"CANCELED"}, timeout=60)
    got = [ln.split("|")[1][2:] for ln in committed_lines(out)]
    check(sorted(got) == sorted(sent), f"{len(got)} lines read, {len(sent)} sent: "
                                      f"missing {sorted(set(sent) - set(got))[:5]}, "
                                      f"extra {sorted(set(got) - set(sent))[:5]}")
    check(len(set(got)) == len(got), "a record was read twice")
    check(c.job(jobid).get("restarts", 0) >= 1, "the kill caused no restore")
    print(f"  {len(got)} records exactly once across discovery and a restore", flush=True)


def options(probe):
    probe.fails({"topic": "t", "bogus": "1"},
                "Kafka source 'src': unknown option 'bogus': use one of bootstrap.servers")
    probe.fails({"topic": "t", "scan.startup.mode": "newest"},
                "Kafka source 'src': option 'scan.startup.mode' is 'newest': use one of "
                "earliest-offset, latest-offset, group-offsets, timestamp")
    probe.fails({"topic": "t", "properties.enable.auto.commit": "true"},
                "Kafka source 'src': option 'properties.enable.auto.commit' is set by the "
                "connector itself")
    print("  bad options refused", flush=True)


def cancel_with_broker_frozen(k, c, probe):
    """A source with group.id whose group commits hang (broker SIGSTOPped) is canceled promptly:
    the task confirms the cancel within the job manager's 10 s (librdkafka alone would wait for
    the commits up to socket.timeout.ms, 60 s)."""
    jobid, _ = probe.start({"topic": "modes", "group.id": "frozen-group"})
    c.wait_state(jobid, {"RUNNING"}, timeout=60)
    c.wait_checkpoints(jobid, 3)
    pid = k.pid()
    check(pid is not None, "no broker pid")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(2)  # checkpoints complete meanwhile: their commits hang
        t0 = time.time()
        c.cli("cancel", jobid, check_rc=0)
        c.wait_state(jobid, {"CANCELED"}, timeout=60)
        took = time.time() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    with open(os.path.join(c.dir, "jobmanager.log")) as f:
        unconfirmed = [ln for ln in f if "did not confirm the cancel" in ln and jobid in ln]
    check(not unconfirmed, f"a task did not confirm the cancel: {unconfirmed}")
    check(took < 8, f"the cancel took {took:.1f} s")
    print(f"  canceled in {took:.1f} s with the broker frozen", flush=True)


def test():
    with Broker() as k, Cluster("kafka-source-modes", tms=2, slots=2, checkpoints="300ms",
                                conf={"restart-strategy.fixed-delay.attempts": "3"}) as c:
        probe = Probe(c, k)
        print("startup modes", flush=True)
        startup_modes(k, probe)
        print("formats", flush=True)
        formats(k, probe)
        print("discovery", flush=True)
        discovery(k, c, probe)
        print("options", flush=True)
        options(probe)
        print("cancel with the broker frozen", flush=True)
        cancel_with_broker_frozen(k, c, probe)


run_test(test)
