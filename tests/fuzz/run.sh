#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded number of executions, from fresh seeds, and prints one
# summary line. The ctest entries fuzz.<target> (label fuzz, tests/fuzz/CMakeLists.txt) call it;
# `make test` and `make fuzz` run them.
#
# usage: run.sh <fuzzer binary> <work dir> <runs> <max_len> [libFuzzer flags...]
#   WEIR_FUZZ_RUNS in the environment overrides <runs>; WEIR_FUZZ_SEED sets libFuzzer's random
#   seed (default 1: the same mutations each run; thread timing and jansson's hash seed still vary).
# First every input of tests/fuzz/regressions/<target>/ (inputs that once failed) runs once; then
# the fuzzing run starts from the target's seeds alone (a large regression input in the corpus
# would slow every later execution). The work dir is emptied first, then holds: regressions.log,
# corpus/ (the seeds, written by the target's LLVMFuzzerInitialize, plus every input libFuzzer
# found interesting), artifacts/ (crash-*, leak-*, timeout-*, oom-* inputs), log (libFuzzer's
# output), summary (the line printed).
# Exit status: 0 when the run ended with no crash, leak, timeout, out-of-memory or sanitizer
# report, else 1 with the report's first line, the saved input and how to replay it.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 <fuzzer> <work dir> <runs> <max_len> [libFuzzer flags...]" >&2
  exit 2
fi
fuzzer=$1 work=$2 runs=${WEIR_FUZZ_RUNS:-$3} max_len=$4
shift 4
name=$(basename "$fuzzer")
src=$(cd "$(dirname "$0")" && pwd)

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"

regressions=()
if [ -d "$src/regressions/$name" ]; then
  mapfile -t regressions < <(find "$src/regressions/$name" -type f | sort)
fi
if [ ${#regressions[@]} -gt 0 ]; then
  if ! ("$fuzzer" -rss_limit_mb=2048 -timeout=30 "${regressions[@]}"
    exit $?) >"$work/regressions.log" 2>&1; then
    tail -n 60 "$work/regressions.log"
    echo "FAIL $name: an input of tests/fuzz/regressions/$name fails again (see $work/regressions.log)" |
      tee "$work/summary"
    exit 1
  fi
fi

start=$(date +%s.%N)
set +e
# in a subshell, so that the shell's own "Aborted" line goes to the log too
(WEIR_FUZZ_SEED_DIR="$work/corpus" "$fuzzer" -runs="$runs" -max_len="$max_len" \
  -seed="${WEIR_FUZZ_SEED:-1}" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/corpus"
  exit $?) >"$work/log" 2>&1
rc=$?
set -e
secs=$(echo "$start $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')

regress_note=""
if [ ${#regressions[@]} -gt 0 ]; then
  regress_note="${#regressions[@]} regression input(s) pass; "
fi
stat() { sed -n "s/^stat::$1: *//p" "$work/log" | tail -1; }
execs=$(stat number_of_executed_units)
peak=$(stat peak_rss_mb)
last=$(grep -E '^#[0-9]+[[:space:]]' "$work/log" | tail -1 || true)
field() { echo "$last" | sed -n "s/.* $1: \([^ ]*\).*/\1/p"; }
corpus=$(field corp)
report=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|fuzz property failed|==[0-9]+== ?ERROR' "$work/log" || true)

if [ "$rc" -eq 0 ] && [ -z "$report" ]; then
  line="$name: ${regress_note}${execs:-?} executions in $secs s, cov $(field cov) ft $(field ft), corpus ${corpus:-?}, peak RSS ${peak:-?} MB: no crash, leak, timeout or sanitizer report"
  echo "$line" | tee "$work/summary"
  exit 0
fi
artifact=$(ls -t "$work/artifacts" 2>/dev/null | head -1)
tail -n 60 "$work/log"
line="FAIL $name: exit $rc after ${execs:-?} executions in $secs s: ${report:-see $work/log}"
if [ -n "$artifact" ]; then
  line="$line; input $work/artifacts/$artifact; replay: $fuzzer $work/artifacts/$artifact"
fi
echo "$line" | tee "$work/summary"
exit 1
