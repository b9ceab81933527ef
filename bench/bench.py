"""Benchmark driver: starts its own cluster (1 job manager + 2 task managers with 1 slot each, so
a -p 2 job spans both), runs one job attached per run, and prints one line per run:
  RESULT name=... engine=weir events=... seconds=... cpu_seconds=... events_per_core_sec=...
cpu_seconds counts every weir process: the job manager, both task managers and the CLI.
After all runs it prints the median run as name=<name>-median.
Usage: bench.py NAME RUNS   (NAME: q0 q1 q2 q3 q4 q5 q7 q8 q11 q20 keyed-count keyed-count-10m; the
event-time queries q3-q20 read NEXMARK_EVENTS too, default 2,000,000, and end in a blackhole sink)
       bench.py nexmark RUNS [QUERY...]   weir beside Apache Flink 2.3.0 (bench/README.md): per
query (default all of NEXMARK_QUERIES), RUNS runs on weir and on Flink alternately, both clusters
up (1 job manager + 2 task managers with 1 slot each, -p 2, RocksDB state, exactly-once
checkpoints every CHECKPOINT_MS, default 10000), the same events (NEXMARK_EVENTS for every
query, or NEXMARK_EVENTS_<QUERY>, else NEXMARK_DEFAULTS below); lines name=nexmark-<q>
engine=weir|flink, then a table of medians and the weir/Flink ratio. Flink's cpu_seconds counts
every JVM of its cluster (jobs are submitted over REST: no client JVM). Each nexmark RESULT line
also has state_disk_bytes: the largest size seen during the run (sampled every 0.5 s) of the
engine's RocksDB files (*.sst, *.log, *.blob) in its task managers' local state directories
(weir: taskmanager.working-dir; Flink: state.backend.rocksdb.localdir), i.e. the keyed state
on disk near the end of the run, memtables not included.
       bench.py keyed-count-10m-vs-flink RUNS   keyed-count-10m on weir and on Flink
(weir.bench.KeyedCountJob: same keys and events) alternately, both with exactly-once checkpoints
every CHECKPOINTS (default 1s), then the weir/Flink ratio of the medians.
CHECKPOINTS=<interval> (e.g. 1s): the cluster takes exactly-once checkpoints at that interval;
results are then named <name>-ckpt-<interval>.
CURVE=1: the cluster authenticates and encrypts its control and data planes with ZeroMQ CURVE
(docs/security.md); results are then named <name>-curve."""

import glob
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import weirtest  # tests/lib, on PYTHONPATH (bench/run.sh)

JOBS = {
    "q0": ("examples/nexmark.so", ["--query", "q0"], "NEXMARK_EVENTS", 20_000_000),
    "q1": ("examples/nexmark.so", ["--query", "q1"], "NEXMARK_EVENTS", 20_000_000),
    "q2": ("examples/nexmark.so", ["--query", "q2"], "NEXMARK_EVENTS", 20_000_000),
    "q3": ("examples/nexmark.so", ["--query", "q3"], "NEXMARK_EVENTS", 2_000_000),
    "q4": ("examples/nexmark.so", ["--query", "q4"], "NEXMARK_EVENTS", 2_000_000),
    "q5": ("examples/nexmark.so", ["--query", "q5"], "NEXMARK_EVENTS", 2_000_000),
    "q7": ("examples/nexmark.so", ["--query", "q7"], "NEXMARK_EVENTS", 2_000_000),
    "q8": ("examples/nexmark.so", ["--query", "q8"], "NEXMARK_EVENTS", 2_000_000),
    "q11": ("examples/nexmark.so", ["--query", "q11"], "NEXMARK_EVENTS", 2_000_000),
    "q20": ("examples/nexmark.so", ["--query", "q20"], "NEXMARK_EVENTS", 2_000_000),
    "keyed-count": ("bench/keyedcount.so", [], "KEYED_EVENTS", 20_000_000),
    # large state: 10 M keys, far more than the state cache (state/README.md "Large state");
    # CHECKPOINTS=1s runs it with exactly-once checkpoints (results named <name>-ckpt-1s)
    "keyed-count-10m": ("bench/keyedcount.so", ["--keys", "10000000"], "KEYED10M_EVENTS",
                        6_000_000),
}


def one_run(name, cluster):
    plugin, args, env_key, default_events = JOBS[name]
    events = int(os.environ.get(env_key, default_events))
    pids = cluster.pids()
    cpu0 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", cluster.address, "run", "-p", "2",
                        os.path.join(weirtest.BUILD, plugin)] + args + ["--events", str(events)],
                       capture_output=True, text=True, timeout=3600)
    wall = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench {name}: job failed: {r.stdout}{r.stderr}\n{cluster.log_tail()}")
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    cpu = (cpu1 - cpu0) + (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return events, wall, cpu


# Events per query for `nexmark`: chosen so that a Flink run takes about 10-40 s here.
NEXMARK_QUERIES = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11", "q20"]
NEXMARK_DEFAULTS = {"q0": 6_000_000, "q1": 6_000_000, "q2": 6_000_000, "q3": 3_000_000,
                    "q4": 1_500_000, "q5": 1_000_000, "q7": 2_000_000, "q8": 3_000_000,
                    "q11": 1_500_000,
                    # q20 keeps every category-10 auction forever: at this size each task
                    # manager's join holds about twice its 32 MiB state cache (README.md
                    # "Performance")
                    "q20": 20_000_000}


def nexmark_events(q):
    return int(os.environ.get(f"NEXMARK_EVENTS_{q.upper()}",
                              os.environ.get("NEXMARK_EVENTS", NEXMARK_DEFAULTS[q])))


class StateOnDisk:
    """Samples, every 0.5 s while in its `with`, the bytes of RocksDB files (*.sst, *.log, *.blob)
    under the directories that match @globs; .max is the largest sum seen (the engines remove
    their local state when a job ends, so the end itself cannot be read afterwards). Runs in a
    thread of this process: its CPU is neither engine's."""

    SUFFIXES = (".sst", ".log", ".blob")

    def __init__(self, globs):
        self.globs, self.max, self._stop = globs, 0, threading.Event()

    def sample(self):
        total = 0
        for root in (d for g in self.globs for d in glob.glob(g)):
            for dirpath, _, files in os.walk(root):
                for f in files:
                    if f.endswith(self.SUFFIXES):
                        try:
                            total += os.lstat(os.path.join(dirpath, f)).st_size
                        except OSError:
                            pass  # compacted away meanwhile
        self.max = max(self.max, total)

    def _loop(self):
        while not self._stop.wait(0.5):
            self.sample()

    def __enter__(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def weir_nexmark_run(cluster, q, events):
    pids = cluster.pids()
    cpu0 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    r = subprocess.run([os.path.join(weirtest.BIN, "weir"), "-m", cluster.address, "run", "-p", "2",
                        os.path.join(weirtest.BUILD, "examples/nexmark.so"), "--query", q,
                        "--events", str(events)], capture_output=True, text=True, timeout=3600)
    wall = time.time() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench nexmark {q}: weir job failed: {r.stdout}{r.stderr}\n{cluster.log_tail()}")
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = sum(weirtest.proc_cpu_seconds(p) for p in pids)
    return wall, (cpu1 - cpu0) + (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


def flink_nexmark_run(fc, q, events, interval_ms):
    cpu0 = fc.cpu_seconds()
    _, wall = fc.run_job(["--query", q, "--events", str(events), "--parallelism", "2",
                          "--checkpoint-interval", str(interval_ms)])
    return wall, fc.cpu_seconds() - cpu0


def nexmark(runs, queries):
    """weir and Flink alternately on the same queries and events; a table of medians at the end."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "flink"))
    import flinkcluster  # bench/flink

    for q in queries:
        if q not in NEXMARK_DEFAULTS:
            raise SystemExit(f"bench nexmark: unknown query {q!r}: one of {', '.join(NEXMARK_QUERIES)}")
    interval_ms = int(os.environ.get("CHECKPOINT_MS", "10000"))
    jar = os.environ.get("FLINK_JAR") or os.path.expanduser("~/.cache/weir/flink/target/weir-flink-nexmark-1.0.jar")
    if not os.path.exists(jar):
        raise SystemExit(f"bench nexmark: no Flink job jar at {jar} (run: bench/flink/build.sh)")
    flink_dir = os.path.join(os.environ.get("WEIR_TEST_TMP") or "/tmp", f"weir-bench-flink-{os.getpid()}")
    medians = {}
    flink_rocksdb = os.path.join(flink_dir, "rocksdb")
    with weirtest.Cluster("bench-nexmark", tms=2, slots=1, checkpoints=f"{interval_ms}ms") as c, \
            flinkcluster.FlinkCluster(flink_dir, jar, tms=2, checkpoint_interval_ms=interval_ms,
                                      extra_conf={"state.backend.rocksdb.localdir": flink_rocksdb}) as fc:
        state_dirs = {"weir": [os.path.join(c.dir, "tm-*")], "flink": [flink_rocksdb]}
        # One unmeasured Flink job first: class loading and the JIT of Flink's own code happen
        # once per cluster, as on a long-running cluster (weir has no such warm-up).
        flink_nexmark_run(fc, "q1", 1_000_000, interval_ms)
        for q in queries:
            events = nexmark_events(q)
            res = {"weir": [], "flink": []}
            for _ in range(runs):
                for engine in ("weir", "flink"):
                    with StateOnDisk(state_dirs[engine]) as disk:
                        if engine == "weir":
                            wall, cpu = weir_nexmark_run(c, q, events)
                        else:
                            wall, cpu = flink_nexmark_run(fc, q, events, interval_ms)
                    res[engine].append((events / cpu, wall, cpu, disk.max))
                    print(f"RESULT name=nexmark-{q} engine={engine} events={events} seconds={wall:.3f} "
                          f"cpu_seconds={cpu:.3f} events_per_core_sec={events / cpu:.0f} "
                          f"state_disk_bytes={disk.max}", flush=True)
            for engine, rs in res.items():
                rs.sort()
                med = rs[len(rs) // 2]
                medians[(q, engine)] = med[0]
                disk = statistics.median(r[3] for r in rs)
                print(f"RESULT name=nexmark-{q}-median engine={engine} events={events} "
                      f"seconds={statistics.median(r[1] for r in rs):.3f} cpu_seconds={med[2]:.3f} "
                      f"events_per_core_sec={med[0]:.0f} state_disk_bytes={disk:.0f}", flush=True)
    print("\n| query | events | weir, events per CPU-second (median) | Flink 2.3.0, events per CPU-second (median) | weir / Flink |")
    print("|---|---|---|---|---|")
    for q in queries:
        w, f = medians[(q, "weir")], medians[(q, "flink")]
        print(f"| {q} | {nexmark_events(q):,} | {w:,.0f} | {f:,.0f} | {w / f:.1f}x |")


def interval_ms(text):
    """"1s" / "500ms" -> milliseconds."""
    for unit, scale in (("ms", 1), ("s", 1000)):
        if text.endswith(unit) and text[:-len(unit)].isdigit():
            return int(text[:-len(unit)]) * scale
    raise SystemExit(f"bench: CHECKPOINTS={text!r}: expected an interval such as 1s or 500ms")


def keyed10m_vs_flink(runs):
    """keyed-count-10m on weir (JOBS entry, unchanged) and on Flink (weir.bench.KeyedCountJob: the
    same keys and event sequence, KeyedProcessFunction + ValueState<Long>, RocksDB incremental),
    alternating, both with exactly-once checkpoints every CHECKPOINTS (default 1s); results named
    keyed-count-10m-ckpt-<interval> engine=weir|flink, their medians and the weir/Flink ratio."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "flink"))
    import flinkcluster  # bench/flink

    ckpt = os.environ.get("CHECKPOINTS") or "1s"
    ms = interval_ms(ckpt)
    name = "keyed-count-10m"
    _, args, env_key, default_events = JOBS[name]
    keys = args[args.index("--keys") + 1]  # weir's own key count: both engines use it
    events = int(os.environ.get(env_key, default_events))
    label = f"{name}-ckpt-{ckpt}"
    jar = os.environ.get("FLINK_JAR") or os.path.expanduser("~/.cache/weir/flink/target/weir-flink-nexmark-1.0.jar")
    if not os.path.exists(jar):
        raise SystemExit(f"bench {name}: no Flink job jar at {jar} (run: bench/flink/build.sh)")
    flink_dir = os.path.join(os.environ.get("WEIR_TEST_TMP") or "/tmp", f"weir-bench-flink-{os.getpid()}")

    def flink_run(fc, n):
        cpu0 = fc.cpu_seconds()
        _, wall = fc.run_job(["--events", str(n), "--keys", keys, "--parallelism", "2",
                              "--checkpoint-interval", str(ms)], entry="weir.bench.KeyedCountJob")
        return n, wall, fc.cpu_seconds() - cpu0

    res = {"weir": [], "flink": []}
    with weirtest.Cluster(f"bench-{label}", tms=2, slots=1, checkpoints=ckpt) as c, \
            flinkcluster.FlinkCluster(flink_dir, jar, tms=2, checkpoint_interval_ms=ms) as fc:
        flink_run(fc, 1_000_000)  # unmeasured: class loading and JIT, as in nexmark()
        for _ in range(runs):
            for engine in ("weir", "flink"):
                n, wall, cpu = one_run(name, c) if engine == "weir" else flink_run(fc, events)
                res[engine].append((n / cpu, n, wall, cpu))
                print(f"RESULT name={label} engine={engine} events={n} seconds={wall:.3f} "
                      f"cpu_seconds={cpu:.3f} events_per_core_sec={n / cpu:.0f}", flush=True)
    med = {}
    for engine, rs in res.items():
        rs.sort()
        m = rs[len(rs) // 2]
        med[engine] = m[0]
        print(f"RESULT name={label}-median engine={engine} events={m[1]} "
              f"seconds={statistics.median(r[2] for r in rs):.3f} cpu_seconds={m[3]:.3f} "
              f"events_per_core_sec={m[0]:.0f}", flush=True)
    print(f"\n| job | events | weir, events per CPU-second (median) | Flink 2.3.0, events per CPU-second (median) | weir / Flink |")
    print("|---|---|---|---|---|")
    print(f"| {label} ({int(keys):,} keys) | {events:,} | {med['weir']:,.0f} | {med['flink']:,.0f} | "
          f"{med['weir'] / med['flink']:.1f}x |")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "nexmark":
        nexmark(int(sys.argv[2]), sys.argv[3:] or NEXMARK_QUERIES)
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "keyed-count-10m-vs-flink":
        keyed10m_vs_flink(int(sys.argv[2]))
        return
    name, runs = sys.argv[1], int(sys.argv[2])
    if name not in JOBS:
        raise SystemExit(f"unknown benchmark {name!r}: one of {', '.join(JOBS)}")
    curve = os.environ.get("CURVE") == "1"
    label = f"{name}-curve" if curve else name
    ckpt = os.environ.get("CHECKPOINTS") or None
    if ckpt:
        label = f"{label}-ckpt-{ckpt}"
    with weirtest.Cluster(f"bench-{label}", tms=2, slots=1, curve=curve, checkpoints=ckpt) as c:
        results = []
        for _ in range(runs):
            events, wall, cpu = one_run(name, c)
            results.append((events / cpu, events, wall, cpu))
            print(f"RESULT name={label} engine=weir events={events} seconds={wall:.3f} cpu_seconds={cpu:.3f} "
                  f"events_per_core_sec={events / cpu:.0f}", flush=True)
        results.sort()
        med = results[len(results) // 2]
        print(f"RESULT name={label}-median engine=weir events={med[1]} seconds={statistics.median(r[2] for r in results):.3f} "
              f"cpu_seconds={med[3]:.3f} events_per_core_sec={med[0]:.0f}", flush=True)


main()
