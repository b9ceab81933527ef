#!/usr/bin/env bash
# Runs weir benchmarks against the release build; each starts its own cluster.
#   bench/run.sh NAME     NAME: q0 q1 q2 q3 q4 q5 q7 q8 q11 keyed-count keyed-count-10m checkpoint kafka
#                         state-restore savepoint all
# (all = q0 q1 q2 keyed-count checkpoint; the event-time queries q3-q11, kafka, state-restore and
#  savepoint run only by name:
#  savepoint builds about 1 GB of keyed state and needs about 3 GB of free disk)
# Environment: BUILD (default build), RUNS (default 3), NEXMARK_EVENTS (default 20,000,000; q3-q11:
#              2,000,000),
#              KEYED_EVENTS (default 20,000,000), KAFKA_WORDS (default 10,000,000),
#              KEYED10M_EVENTS (keyed-count-10m: 10,000,000 keys, default 6,000,000 events; runs
#              RUNS without checkpoints, then RUNS with exactly-once checkpoints every 1 s),
#              SP_KEYS, SP_VALUE_BYTES, SP_BUILD_FACTOR, SAVEPOINT_COPY_DIR (savepoint_bench.py),
#              CURVE=1 (ZeroMQ CURVE on the control and data planes; results named <name>-curve).
# state-restore (no cluster: build/bench/state_restore over the state module): STATE_KEYS (default
#              10,000,000 keys x 100 bytes, ~1 GB), STATE_RESTORE_DIR (its work directory, default
#              $BUILD/bench-tmp/state-restore, removed at the end), SAVEPOINT_DIR (default inside it:
#              same filesystem, SST files hard-linked; another filesystem measures copies).
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
elif [ "$name" = keyed-count-10m ]; then
  python3 "$here/bench.py" keyed-count-10m "$runs"
  CHECKPOINTS=1s python3 "$here/bench.py" keyed-count-10m "$runs"
elif [ "$name" = checkpoint ]; then
  python3 "$here/checkpoint_bench.py" "$runs"
else
  python3 "$here/bench.py" "$name" "$runs"
fi
