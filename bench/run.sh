#!/usr/bin/env bash
# Runs weir benchmarks against the release build; each starts its own cluster.
#   bench/run.sh NAME     NAME: q0 q1 q2 keyed-count checkpoint kafka savepoint all
# (all = q0 q1 q2 keyed-count checkpoint; kafka and savepoint run only by name: savepoint
#  builds about 1 GB of keyed state and needs about 3 GB of free disk)
# Environment: BUILD (default build), RUNS (default 3), NEXMARK_EVENTS (default 20,000,000),
#              KEYED_EVENTS (default 20,000,000), KAFKA_WORDS (default 10,000,000),
#              SP_KEYS, SP_VALUE_BYTES, SP_BUILD_FACTOR, SAVEPOINT_COPY_DIR (savepoint_bench.py),
#              CURVE=1 (ZeroMQ CURVE on the control and data planes; results named <name>-curve).
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
elif [ "$name" = savepoint ]; then
  python3 "$here/savepoint_bench.py" "$runs"
elif [ "$name" = checkpoint ]; then
  python3 "$here/checkpoint_bench.py" "$runs"
else
  python3 "$here/bench.py" "$name" "$runs"
fi
