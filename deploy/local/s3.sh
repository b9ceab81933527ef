#!/usr/bin/env bash
# A real S3 server for development, tests, CI and benchmarks: one SeaweedFS process (`weed server`:
# master, volume server, filer and S3 gateway in one process) on loopback. A contract: scripts in
# and outside the repo use exactly
#   deploy/local/s3.sh start DIR PORT   # returns once S3 on http://127.0.0.1:PORT stores an object
#   deploy/local/s3.sh stop DIR         # SIGTERM, up to S3_STOP_TIMEOUT (5) s, then SIGKILL; no server: exit 0
#
# Credentials (static, documented, for tests only; docs/s3.md): access key `weir-test`, secret key
# `weir-test-secret`, region `us-east-1` (SeaweedFS accepts any region), path-style addressing
# (http://127.0.0.1:PORT/bucket/key). Requests without a valid signature are refused (403).
#
# start:
# - The binary: scripts/install-seaweedfs.sh (builds it once into ~/.cache/weir-tools; later
#   starts run no Go at all). WEED overrides the binary's path.
# - DIR: s3.json (the identities), ports.env (the ports of this DIR: master, volume, filer and
#   their gRPC ports, picked free on the first start and reused by later starts while they are
#   free, so a stop + start keeps the same layout), data/ (volumes, the master's raft state and the
#   filer's embedded leveldb store: a later start in the same DIR, after stop, reuses it: buckets
#   and objects survive), weed.out (the server's log: glog to stderr), pid.
# - Every listener on 127.0.0.1 only; S3 on PORT; the master, volume and filer HTTP and gRPC ports
#   free ones; no Iceberg/Lance/HTTPS/metrics/debug listeners; the master's telemetry off.
#   Each bucket is a SeaweedFS collection; volumes grow one at a time (WEED_MASTER_VOLUME_GROWTH_COPY_1=1)
#   of at most S3_VOLUME_MB (128) MB each, so many buckets fit.
# - S3_EXTRA_ARGS: more `weed server` flags (space-separated), appended last (they win).
# - Ready: a signed round trip (create bucket weir-s3sh-probe, put, get and delete an object,
#   with curl --aws-sigv4) succeeds within S3_START_TIMEOUT seconds (60); the (empty) probe
#   bucket stays. After a restart, SeaweedFS holds the first write ~10-15 s (the master's
#   topology warms up), so a restart takes ~17 s, a first start ~11 s;
#   otherwise the server is stopped, the end of weed.out printed, exit 1. The start time is printed.
# - The process runs in a session of its own (setsid), so it outlives this script; only `stop`
#   ends it. Starting in a DIR whose server runs is an error naming DIR and the pid.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
ACCESS_KEY=weir-test
SECRET_KEY=weir-test-secret

die() {
  echo "s3.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: deploy/local/s3.sh start DIR PORT | deploy/local/s3.sh stop DIR" >&2
  exit 2
}

# The pid of the server running in $1 (an absolute DIR), or nothing. A pid file whose process is
# gone, or is no longer our server (the pid was reused), counts as no server.
running_pid() {
  local pid
  pid="$(cat "$1/pid" 2>/dev/null)" || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-s3.config=$1/s3.json" || return 0
  echo "$pid"
}

# Whether process $1 is alive: exists and is not a zombie.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}

# $1 free TCP ports on 127.0.0.1, distinct, none equal to $2 (the kernel's choice).
free_ports() {
  python3 -c 'import socket, sys
n, avoid = int(sys.argv[1]), int(sys.argv[2])
socks, ports = [], []
while len(ports) < n:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; socks.append(s)
    if p != avoid and p + 10000 != avoid: ports.append(p)
print(" ".join(map(str, ports)))' "$1" "$2"
}

port_in_use() {
  python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(0)
sys.exit(1)' "$1"
}

print_logs() {
  echo "--- last lines of $1/weed.out ---" >&2
  tail -n 40 "$1/weed.out" >&2 2>/dev/null || echo "(no weed.out)" >&2
}

stop_server() {
  local dir="$1" pid i
  pid="$(running_pid "$dir")"
  if [ -z "$pid" ]; then
    rm -f "$dir/pid"
    return 0
  fi
  local grace="${S3_STOP_TIMEOUT:-5}"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    # Expected: the filer's shutdown retries flushing its metadata log to the volume server that
    # already stopped (about 15 s). Objects are durable already (written and acknowledged).
    echo "s3.sh: server $pid in $dir did not stop within $grace s of SIGTERM; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
  fi
  rm -f "$dir/pid"
  # weed's gRPC unix sockets (/tmp/seaweedfs-<service>-grpc-<port>.sock, fixed by weed server;
  # left behind by a SIGKILL)
  local MASTER_GRPC="" VOLUME_GRPC="" FILER_GRPC="" S3_GRPC=""
  if [ -f "$dir/ports.env" ]; then
    # shellcheck disable=SC1091
    . "$dir/ports.env"
    rm -f "/tmp/seaweedfs-master-grpc-$MASTER_GRPC.sock" "/tmp/seaweedfs-volume-grpc-$VOLUME_GRPC.sock" \
      "/tmp/seaweedfs-filer-grpc-$FILER_GRPC.sock" "/tmp/seaweedfs-s3-grpc-$S3_GRPC.sock"
  fi
}

# One signed S3 request with curl: METHOD URL [curl args...]; prints the HTTP status.
s3_curl() {
  local method="$1" url="$2"
  shift 2
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X "$method" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$url" 2>/dev/null || true
}

# S3_DEBUG=1: the probe's steps on stderr.
debug() {
  [ -z "${S3_DEBUG:-}" ] || echo "s3.sh: $(date +%T.%N) probe: $*" >&2
}

# The readiness probe: a full signed write/read/delete round trip through the filer and a volume.
probe() {
  local base="http://127.0.0.1:$1/weir-s3sh-probe" code tmp
  code="$(s3_curl PUT "$base")"
  debug "create bucket: HTTP $code"
  [ "$code" = 200 ] || [ "$code" = 409 ] || return 1
  tmp="$(mktemp)"
  echo "weir s3.sh probe $$" >"$tmp"
  code="$(s3_curl PUT "$base/probe" --data-binary "@$tmp")"
  debug "put object: HTTP $code"
  rm -f "$tmp"
  [ "$code" = 200 ] || return 1
  [ "$(s3_curl GET "$base/probe")" = 200 ] || return 1
  [ "$(s3_curl DELETE "$base/probe")" = 204 ] || return 1
  return 0
}

cmd_start() {
  local dir="$1" port="$2"
  [[ "$port" =~ ^[0-9]{1,5}$ ]] && ((10#$port > 0 && 10#$port < 65536)) || die "PORT must be a TCP port number, got '$port'"
  port=$((10#$port))
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local pid
  pid="$(running_pid "$dir")"
  [ -z "$pid" ] || die "a server is already running in $dir (pid $pid); stop it first: deploy/local/s3.sh stop $dir"
  command -v python3 >/dev/null || die "python3 not found (picks the free ports)"
  command -v curl >/dev/null || die "curl not found (the readiness probe); run scripts/install-deps.sh"
  port_in_use "$port" && die "port $port on 127.0.0.1 is already in use; pick another PORT"
  local weed="${WEED:-}"
  if [ -z "$weed" ]; then
    weed="$(bash "$repo/scripts/install-seaweedfs.sh" | tail -n 1)" || die "no SeaweedFS binary (scripts/install-seaweedfs.sh failed above)"
  fi
  [ -x "$weed" ] || die "SeaweedFS binary $weed is not executable; run scripts/install-seaweedfs.sh or fix WEED"

  # The ports of this DIR: reused when all are still free, else picked anew.
  local MASTER_PORT="" MASTER_GRPC="" VOLUME_PORT="" VOLUME_GRPC="" FILER_PORT="" FILER_GRPC="" S3_GRPC="" p ok=1
  if [ -f "$dir/ports.env" ]; then
    # shellcheck disable=SC1091
    . "$dir/ports.env"
    for p in "$MASTER_PORT" "$MASTER_GRPC" "$VOLUME_PORT" "$VOLUME_GRPC" "$FILER_PORT" "$FILER_GRPC" "$S3_GRPC"; do
      if [ -z "$p" ] || [ "$p" = "$port" ] || port_in_use "$p"; then ok=0; fi
    done
  else
    ok=0
  fi
  if [ "$ok" = 0 ]; then
    read -r MASTER_PORT MASTER_GRPC VOLUME_PORT VOLUME_GRPC FILER_PORT FILER_GRPC S3_GRPC <<<"$(free_ports 7 "$port")"
    printf 'MASTER_PORT=%s\nMASTER_GRPC=%s\nVOLUME_PORT=%s\nVOLUME_GRPC=%s\nFILER_PORT=%s\nFILER_GRPC=%s\nS3_GRPC=%s\n' \
      "$MASTER_PORT" "$MASTER_GRPC" "$VOLUME_PORT" "$VOLUME_GRPC" "$FILER_PORT" "$FILER_GRPC" "$S3_GRPC" >"$dir/ports.env"
  fi

  cat >"$dir/s3.json" <<EOF
{
  "identities": [
    {
      "name": "weir-test",
      "credentials": [{ "accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY" }],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
  mkdir -p "$dir/data"
  # Unix sockets of the filer and S3 gateway: in DIR when the path fits sun_path (108 bytes).
  local sockargs=()
  if [ ${#dir} -lt 80 ]; then
    sockargs=("-filer.localSocket=$dir/filer.sock" "-s3.localSocket=$dir/s3.sock")
  fi
  local args=(
    -logtostderr=true server
    -ip=127.0.0.1 -ip.bind=127.0.0.1 "-dir=$dir/data"
    -master.port="$MASTER_PORT" -master.port.grpc="$MASTER_GRPC" "-master.dir=$dir/data"
    -master.telemetry=false -master.volumeSizeLimitMB="${S3_VOLUME_MB:-128}"
    -master.electionTimeout=1s -master.heartbeatInterval=100ms
    -volume.port="$VOLUME_PORT" -volume.port.grpc="$VOLUME_GRPC" -volume.max=0 -volume.preStopSeconds=0
    -filer -filer.port="$FILER_PORT" -filer.port.grpc="$FILER_GRPC"
    -s3 -s3.port="$port" -s3.port.grpc="$S3_GRPC" -s3.port.iceberg=0 -s3.port.lance=0
    "-s3.config=$dir/s3.json"
    "${sockargs[@]}"
  )
  if [ -n "${S3_EXTRA_ARGS:-}" ]; then
    # shellcheck disable=SC2206 # space-separated flags by design
    args+=($S3_EXTRA_ARGS)
  fi

  rm -f "$dir/pid"
  {
    echo "# deploy/local/s3.sh start $dir $port at $(date -u +%FT%TZ)"
    echo "# $weed ${args[*]}"
  } >>"$dir/weed.out"
  # In DIR as working directory (weed reads *.toml from there: none); $$ is the inner shell's pid,
  # which exec makes weed's.
  # shellcheck disable=SC2016
  WEED_MASTER_VOLUME_GROWTH_COPY_1=1 setsid bash -c 'cd "$1" && echo $$ >"$1/pid"; shift; exec "$@"' _ "$dir" \
    "$weed" "${args[@]}" >>"$dir/weed.out" 2>&1 </dev/null &
  local t0 timeout="${S3_START_TIMEOUT:-60}"
  t0="$(date +%s.%N)"
  while :; do
    pid="$(cat "$dir/pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && ! alive "$pid"; then
      print_logs "$dir"
      die "the server in $dir exited during start (log above)"
    fi
    if [ -n "$pid" ] && probe "$port"; then
      echo "s3.sh: SeaweedFS $pid, S3 on http://127.0.0.1:$port ready in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s (dir $dir)" >&2
      return 0
    fi
    if (($(date +%s) - ${t0%.*} >= timeout)); then
      print_logs "$dir"
      stop_server "$dir"
      die "S3 on 127.0.0.1:$port did not store an object within $timeout s (log above; files in $dir)"
    fi
    sleep 0.2
  done
}

cmd_stop() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  stop_server "$(cd "$dir" && pwd)"
}

case "${1:-}" in
start)
  [ $# -eq 3 ] || usage
  cmd_start "$2" "$3"
  ;;
stop)
  [ $# -eq 2 ] || usage
  cmd_stop "$2"
  ;;
*) usage ;;
esac
