#!/usr/bin/env bash
# `make demo`: starts 1 job manager + 2 task managers (2 slots each) on loopback, runs
# examples/wordcount.so at -p 4 over the bundled text, prints the 10 most frequent words, stops.
# Usage: deploy/local/demo.sh [BUILD_DIR]. Ports: REST_PORT (8081), RPC_PORT (6123).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
rest="${REST_PORT:-8081}"
rpc="${RPC_PORT:-6123}"
input="$(ls "$root"/examples/data/*.txt | head -n 1)"
work="$(mktemp -d /tmp/weir-demo.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

common=(-D jobmanager.rpc.address=127.0.0.1 -D "jobmanager.rpc.port=$rpc")
"$build/bin/weir-jobmanager" "${common[@]}" -D "rest.port=$rest" -D rest.bind-address=127.0.0.1 \
  -D jobmanager.bind-host=127.0.0.1 -D "blob.storage.directory=$work/blobs" 2>"$work/jobmanager.log" &
pids+=($!)
for i in 0 1; do
  "$build/bin/weir-taskmanager" "${common[@]}" -D taskmanager.numberOfTaskSlots=2 \
    -D taskmanager.host=127.0.0.1 -D taskmanager.bind-host=127.0.0.1 \
    -D "taskmanager.working-dir=$work/tm-$i" -D "taskmanager.resource-id=tm-$i" \
    >"$work/taskmanager-$i.out" 2>"$work/taskmanager-$i.log" &
  pids+=($!)
done

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
cat "$work"/out/part-* | awk '{ if ($2 > max[$1]) max[$1] = $2 } END { for (w in max) print max[w], w }' \
  | sort -k1,1nr -k2 | head -n 10 | awk '{ printf "  %-20s %d\n", $2, $1 }'
"$build/bin/weir" -m "127.0.0.1:$rest" list
