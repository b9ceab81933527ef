#!/usr/bin/env bash
# Runs weir benchmarks against the release build; each starts its own cluster.
#   bench/run.sh NAME     NAME: q0 q1 q2 q3 q4 q5 q7 q8 q11 q20 keyed-count keyed-count-10m checkpoint kafka
#                         state-restore savepoint s3 nexmark latency all
#   bench/run.sh nexmark [QUERY...]   weir beside Apache Flink 2.3.0 on the same machine: every
#                         query (q0 q1 q2 q3 q4 q5 q7 q8 q11 q20) on both engines alternately, RUNS
#                         each, checkpoints every CHECKPOINT_MS (default 10000) on both; RESULT
#                         lines with engine=weir|flink and a final table of medians and ratios.
#                         Builds the Flink job (bench/flink/build.sh: Maven, ~/.m2) and installs
#                         Flink's distribution (bench/flink/setup.sh: PyPI apache-flink into
#                         ~/.cache/weir/venv-flink) first. NEXMARK_EVENTS (all queries) or
#                         NEXMARK_EVENTS_Q<N> override bench.py's per-query defaults.
# (all = q0 q1 q2 keyed-count checkpoint; the event-time queries q3-q20, kafka, state-restore and
#  savepoint and s3 run only by name:
#  savepoint builds about 1 GB of keyed state and needs about 3 GB of free disk)
# Environment: BUILD (default build), RUNS (default 3), NEXMARK_EVENTS (default 20,000,000; q3-q20:
#              2,000,000),
#              KEYED_EVENTS (default 20,000,000), KAFKA_WORDS (default 10,000,000),
#              KEYED10M_EVENTS (keyed-count-10m: 10,000,000 keys, default 6,000,000 events; runs
#              RUNS without checkpoints, then RUNS with exactly-once checkpoints every 1 s, these
#              alternating with Flink 2.3.0's count on the same keys and events and a weir/Flink
#              ratio at the end; KEYED10M_FLINK=0: weir alone),
#              SP_KEYS, SP_VALUE_BYTES, SP_BUILD_FACTOR, SAVEPOINT_COPY_DIR (savepoint_bench.py),
#              CURVE=1 (ZeroMQ CURVE on the control and data planes; results named <name>-curve).
# state-restore (no cluster: build/bench/state_restore over the state module): STATE_KEYS (default
#              10,000,000 keys x 100 bytes, ~1 GB), STATE_RESTORE_DIR (its work directory, default
#              $BUILD/bench-tmp/state-restore, removed at the end), SAVEPOINT_DIR (default inside it:
#              same filesystem, SST files hard-linked; another filesystem measures copies).
# s3 (bench/s3_bench.py): checkpoints on S3 (SeaweedFS started by deploy/local/s3.sh on this
#              machine) against POSIX: 1 GB of keyed state, restore time and full checkpoint duration
#              (medians of RUNS, alternating), and the throughput overhead of checkpoints every 10 s
#              to S3 / POSIX / none on the 10 M-key count: S3B_KEYS, S3B_VALUE_BYTES, S3B_PARTS,
#              S3B_OVERHEAD_EVENTS, S3B_OVERHEAD_KEYS; about 3 GB of free disk.
# latency (bench/latency_bench.py): end-to-end latency at 50 % and 90 % of the measured peak with
#              execution.buffer-timeout default, 0 ms and 1 ms, weir beside Flink 2.3.0 (alternating;
#              each engine at its own peak): LAT_PEAK_EVENTS (default 10,000,000), LAT_SECONDS per
#              run (default 10), LAT_TIMEOUTS (default "default,0ms,1ms"), LAT_LOADS (default
#              "0.5,0.9"), LAT_ENGINES (default "weir,flink"; "weir" needs no Flink).
# Prints one RESULT line per run and one <name>-median line per benchmark.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export WEIR_BUILD="${BUILD:-$here/../build}"
export PYTHONPATH="$(cd "$here/../tests/lib" && pwd)${PYTHONPATH:+:$PYTHONPATH}"  # weirtest
[ -x "$WEIR_BUILD/bin/weir-jobmanager" ] || { echo "bench: no build at $WEIR_BUILD (run: make build)" >&2; exit 1; }
runs="${RUNS:-3}"
name="${1:-all}"
if [ "$name" = all ]; then
  for n in q0 q1 q2 keyed-count; do python3 "$here/bench.py" "$n" "$runs"; done
  python3 "$here/checkpoint_bench.py" "$runs"
elif [ "$name" = kafka ]; then
  python3 "$here/kafka_bench.py" "$runs"   # starts its own broker (deploy/local/kafka.sh)
elif [ "$name" = state-restore ]; then
  RUNS="$runs" "$WEIR_BUILD/bench/state_restore" "${STATE_RESTORE_DIR:-$WEIR_BUILD/bench-tmp/state-restore}"
elif [ "$name" = savepoint ]; then
  python3 "$here/savepoint_bench.py" "$runs"
elif [ "$name" = s3 ]; then
  python3 "$here/s3_bench.py" "$runs"  # starts its own SeaweedFS (deploy/local/s3.sh)
elif [ "$name" = nexmark ]; then
  "$here/flink/setup.sh" >/dev/null
  export FLINK_JAR="$("$here/flink/build.sh")"
  shift
  python3 "$here/bench.py" nexmark "$runs" "$@"
elif [ "$name" = latency ]; then
  if [[ ",${LAT_ENGINES:-weir,flink}," == *,flink,* ]]; then
    "$here/flink/setup.sh" >/dev/null
    export FLINK_JAR="$("$here/flink/build.sh" ${FLINK_OUT:+"$FLINK_OUT"})"  # FLINK_OUT: build.sh's OUT
  fi
  python3 "$here/latency_bench.py" "$runs"  # LAT_PEAK_EVENTS, LAT_SECONDS, LAT_TIMEOUTS, LAT_LOADS, LAT_ENGINES
elif [ "$name" = keyed-count-10m ]; then
  python3 "$here/bench.py" keyed-count-10m "$runs"
  if [ "${KEYED10M_FLINK:-1}" = 0 ]; then
    CHECKPOINTS=1s python3 "$here/bench.py" keyed-count-10m "$runs"
  else  # the checkpointed runs alternate weir and Flink (bench.py keyed10m_vs_flink)
    "$here/flink/setup.sh" >/dev/null
    export FLINK_JAR="$("$here/flink/build.sh" ${FLINK_OUT:+"$FLINK_OUT"})"  # FLINK_OUT: build.sh's OUT
    CHECKPOINTS=1s python3 "$here/bench.py" keyed-count-10m-vs-flink "$runs"
  fi
elif [ "$name" = checkpoint ]; then
  python3 "$here/checkpoint_bench.py" "${RUNS:-5}"  # medians of at least 5; CKPT_* (checkpoint_bench.py)
else
  python3 "$here/bench.py" "$name" "$runs"
fi
