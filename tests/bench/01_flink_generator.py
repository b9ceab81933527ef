"""Bench harness: the Flink port of the Nexmark generator and queries (bench/flink) is equivalent
to weir's, so that `bench/run.sh nexmark` compares the two engines on the same work.
- bench/flink/build.sh builds the job jar with Maven (Flink 2.3.0 from Maven Central into ~/.m2)
  into the build dir;
- the generator: `nexmark.so --query events --events 10000` at -p 2 on a weir cluster and the
  Java generator (weir.bench.GenDump) write the same 10,000 JSON lines, byte for byte (sorted:
  weir's part files interleave its two subtasks); so do the reference (tests/nexmark_ref/gen.py)
  and GenDump for 5,000 positions from 777 with out-of-order groups of 500, 5% late events and
  3,333 events/s of event time (every rule of the generator);
- the Flink job itself, in a MiniCluster at parallelism 2 with exactly-once checkpoints every
  second and RocksDB state: its `events` output (the source's strided positions) is the same
  10,000 lines, and its q5 (hot items: sliding windows), q3 (local item suggestion: a join) and
  q20 (bids joined with their category-10 auction) rows equal tests/nexmark_ref/queries.py's over
  those events (JSON parsed, multisets)."""

import json
import os
import subprocess
import sys
import tempfile

import flinktest
from weirtest import EXAMPLES, Cluster, check, run_test

SRC = os.environ.get("WEIR_SRC") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(SRC, "tests", "nexmark_ref"))
import gen  # noqa: E402  (tests/nexmark_ref/gen.py)
import queries  # noqa: E402  (tests/nexmark_ref/queries.py)

N = 10000


def canon(rows):
    return sorted(json.dumps(r, sort_keys=True, separators=(",", ":")) for r in rows)


def same_lines(name, got, want):
    got, want = sorted(got), sorted(want)
    check(len(got) == len(want), f"{name}: {len(got)} lines, expected {len(want)}")
    if got != want:
        i = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        raise AssertionError(f"{name}: first sorted difference:\n  got:  {got[i]}\n  want: {want[i]}")


def main():
    out_dir = os.path.join(os.environ.get("WEIR_BUILD", "build"), "flink")
    jar, cp = flinktest.build(out_dir)

    def gendump(*args):
        r = subprocess.run(["java", "-cp", jar, "weir.bench.GenDump", *args], capture_output=True,
                           text=True, timeout=300)
        check(r.returncode == 0, f"GenDump {args}: {r.stderr}")
        return r.stdout.splitlines()

    java_lines = gendump("--events", str(N))
    opts = ["--first", "777", "--out-of-order-group", "500", "--late-fraction", "0.05",
            "--events-per-second", "3333"]
    ref = gen.events(777, 5000, 3333.0, 500, 0.05)
    same_lines("GenDump vs gen.py (groups, late, rate)", gendump("--events", "5000", *opts),
               [json.dumps(e, separators=(",", ":")) for e in ref])
    print(f"GenDump = tests/nexmark_ref/gen.py for 5,000 positions with {' '.join(opts)}")

    with Cluster("flink-generator", tms=2, slots=1) as c:
        out = os.path.join(c.dir, "events")
        jobid = c.submit("-p", "2", os.path.join(EXAMPLES, "nexmark.so"), "--query", "events",
                         "--events", str(N), "--output", out)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(job["state"] == "FINISHED", f"weir events job ended {job['state']}")
        weir_lines = []
        for name in sorted(os.listdir(out)):
            check(not name.startswith("."), f"uncommitted file {name}")
            with open(os.path.join(out, name), encoding="utf-8") as f:
                weir_lines += f.read().splitlines()
    same_lines("weir nexmark.so --query events -p 2 vs GenDump", weir_lines, java_lines)
    print(f"weir -p 2 = GenDump: {N} events byte for byte")

    with tempfile.TemporaryDirectory(prefix="weir-flink-gen-") as tmp:
        base = os.path.join(tmp, "out")
        r = subprocess.run(["java", "-cp", cp, "weir.bench.NexmarkJob", "--local", "--query", "events,q5,q3,q20",
                            "--events", str(N), "--parallelism", "2", "--checkpoint-interval", "1000",
                            "--checkpoint-dir", "file://" + os.path.join(tmp, "ck"), "--output", base],
                           capture_output=True, text=True, timeout=600)
        check(r.returncode == 0, f"Flink job failed:\n{r.stdout[-4000:]}{r.stderr[-4000:]}")
        check("EmbeddedRocksDBStateBackend" in r.stdout + r.stderr, "the Flink job did not load RocksDB")
        check("Completed checkpoint" in r.stdout + r.stderr, "the Flink job completed no checkpoint")

        def read(q):
            path = f"{base}.{q}"
            if not os.path.exists(path):
                return []
            with open(path, encoding="utf-8") as f:
                return f.read().splitlines()

        flink_events = read("events")
        same_lines("Flink job's events (-p 2) vs GenDump", flink_events, java_lines)
        events = [json.loads(line) for line in weir_lines]
        for q in ("q5", "q3", "q20"):
            got = [json.loads(line) for line in read(q)]
            want = queries.QUERIES[q](events)
            check(want, f"{q}: the reference has no rows for {N} events (test data too small)")
            same_lines(f"Flink {q} vs tests/nexmark_ref/queries.py", canon(got), canon(want))
            print(f"Flink {q}: {len(got)} rows = the reference's")
    print(f"Flink job at -p 2: {len(flink_events)} events = GenDump; q5, q3 and q20 = the reference")


run_test(main)
