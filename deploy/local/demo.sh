#!/usr/bin/env bash
# `make demo`: starts 1 job manager + 2 task managers (2 slots each) on loopback, checkpoints every
# 500 ms, and
#  1. runs examples/wordcount.so at -p 4 over the bundled text (file in, exactly-once file sink
#     out) and prints the 10 most frequent words;
#  2. the Kafka path: starts an Apache Kafka broker (deploy/local/kafka.sh; the first run fetches
#     it with Maven), produces the same text into topic "lines" with kcat, runs
#     examples/kafka_wordcount.so at -p 4 with exactly-once delivery into topic "counts", kills a
#     task manager with kill -9 while it runs (a replacement is started), reads the result back
#     with a read_committed consumer (kcat) and prints the 10 most frequent words again: the same
#     counts as the file run, although a task manager died;
# then stops everything. Usage: deploy/local/demo.sh [BUILD_DIR].
# Ports: REST_PORT (8081), RPC_PORT (6123), KAFKA_PORT (9092).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
rest="${REST_PORT:-8081}"
rpc="${RPC_PORT:-6123}"
kport="${KAFKA_PORT:-9092}"
input="$(ls "$root"/examples/data/*.txt | head -n 1)"
work="$(mktemp -d /tmp/weir-demo.XXXXXX)"
pids=()
cleanup() {
  [ -d "$work/kafka" ] && "$root/deploy/local/kafka.sh" stop "$work/kafka" >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

common=(-D jobmanager.rpc.address=127.0.0.1 -D "jobmanager.rpc.port=$rpc")
"$build/bin/weir-jobmanager" "${common[@]}" -D "rest.port=$rest" -D rest.bind-address=127.0.0.1 \
  -D jobmanager.bind-host=127.0.0.1 -D "blob.storage.directory=$work/blobs" \
  -D execution.checkpointing.interval=500ms -D "state.checkpoints.dir=$work/checkpoints" \
  -D restart-strategy.fixed-delay.delay=200ms 2>"$work/jobmanager.log" &
pids+=($!)
tm_pid=()
start_tm() {
  "$build/bin/weir-taskmanager" "${common[@]}" -D taskmanager.numberOfTaskSlots=2 \
    -D taskmanager.host=127.0.0.1 -D taskmanager.bind-host=127.0.0.1 \
    -D "taskmanager.working-dir=$work/tm-$1" -D "taskmanager.resource-id=tm-$1" \
    >>"$work/taskmanager-$1.out" 2>>"$work/taskmanager-$1.log" &
  pids+=($!)
  tm_pid[$1]=$!
}
for i in 0 1; do start_tm "$i"; done

echo "demo: waiting for 2 task managers at http://127.0.0.1:$rest ..."
for _ in $(seq 100); do
  n=$(curl -sf "http://127.0.0.1:$rest/taskmanagers" 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["taskmanagers"]))' 2>/dev/null || echo 0)
  [ "$n" = 2 ] && break
  sleep 0.1
done
[ "$n" = 2 ] || { echo "demo: task managers did not register; logs in $work" >&2; cat "$work"/*.log >&2; exit 1; }

echo "demo: weir run -p 4 wordcount.so --input $(basename "$input")"
"$build/bin/weir" -m "127.0.0.1:$rest" run -p 4 "$build/examples/wordcount.so" \
  --input "$input" --output "$work/out"
echo "demo: the 10 most frequent words (word count):"
# Each output line is "word count" for one update; a word's final count is its largest.
top10() {
  awk '{ if ($2 > max[$1]) max[$1] = $2 } END { for (w in max) print max[w], w }' \
    | sort -k1,1nr -k2 | head -n 10 | awk '{ printf "  %-20s %d\n", $2, $1 }'
}
cat "$work"/out/part-* | top10 | tee "$work/top-file.txt"

# --- The Kafka path ------------------------------------------------------------------------------
rest_get() { curl -sf "http://127.0.0.1:$rest$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
echo "demo: starting an Apache Kafka broker on 127.0.0.1:$kport (deploy/local/kafka.sh) ..."
KAFKA_EXTRA_CONFIG="num.partitions=4" "$root/deploy/local/kafka.sh" start "$work/kafka" "$kport"
grep -v '^[[:space:]]*$' "$input" | kcat -P -b "127.0.0.1:$kport" -t lines -X enable.idempotence=true \
  -X sticky.partitioning.linger.ms=0 2>>"$work/kcat.log"
echo "demo: produced $(grep -cv '^[[:space:]]*$' "$input") lines into topic 'lines' with kcat"
echo "demo: weir run -d -p 4 kafka_wordcount.so --delivery exactly-once --bounded --rate 100"
job=$("$build/bin/weir" -m "127.0.0.1:$rest" run -d -p 4 "$build/examples/kafka_wordcount.so" \
  --brokers "127.0.0.1:$kport" --input-topic lines --output-topic counts \
  --delivery exactly-once --bounded --rate 100 | awk '/JobID/ { print $NF }')
[ -n "$job" ] || { echo "demo: the Kafka job was not submitted" >&2; exit 1; }
for _ in $(seq 300); do
  n=$(rest_get "/jobs/$job/checkpoints" | json 'd["counts"]["completed"]' 2>/dev/null || echo 0)
  [ "$n" -ge 2 ] && break
  sleep 0.1
done
echo "demo: $n checkpoints completed; kill -9 task manager tm-1 (pid ${tm_pid[1]}) and start a new one"
{ kill -9 "${tm_pid[1]}" && wait "${tm_pid[1]}"; } 2>/dev/null || true
start_tm 1
for _ in $(seq 1200); do
  state=$(rest_get "/jobs/$job" | json 'd["state"]' 2>/dev/null || echo "?")
  case "$state" in FINISHED | FAILED | CANCELED) break ;; esac
  sleep 0.1
done
echo "demo: the Kafka job is $state after $(rest_get "/jobs/$job" | json 'd.get("restarts", 0)') restart(s)"
[ "$state" = FINISHED ] || { echo "demo: logs in $work" >&2; tail -n 20 "$work"/*.log >&2; exit 1; }
echo "demo: the 10 most frequent words, read back from topic 'counts' at read_committed:"
kcat -C -b "127.0.0.1:$kport" -t counts -o beginning -e -q -X isolation.level=read_committed \
  -f '%s\n' | top10 | tee "$work/top-kafka.txt"
if cmp -s "$work/top-file.txt" "$work/top-kafka.txt"; then
  echo "demo: same counts as the file run: exactly once through a kill -9"
else
  echo "demo: the Kafka counts differ from the file run" >&2
  exit 1
fi
"$build/bin/weir" -m "127.0.0.1:$rest" list
