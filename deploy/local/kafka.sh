#!/usr/bin/env bash
# A real Apache Kafka broker for development, tests, CI and the demo: one KRaft node (broker and
# controller in one JVM) on loopback. A contract: scripts in and outside the repo use exactly
#   deploy/local/kafka.sh start DIR PORT   # returns once a broker on 127.0.0.1:PORT answers metadata
#   deploy/local/kafka.sh stop DIR         # SIGTERM, up to 20 s, then SIGKILL; no broker: exit 0
#
# start:
# - Jars: Apache Kafka 4.1.1 (org.apache.kafka:kafka_2.13 and kafka-tools, log4j2 behind slf4j;
#   deploy/local/kafka/pom.xml) are resolved with Maven on first use into
#   ${WEIR_CACHE:-$HOME/.cache/weir}/kafka-4.1.1/libs, outside the repo. Later starts make no
#   Maven call at all (offline). The download goes to a temporary directory renamed into place,
#   under a lock: an interrupted download never leaves a half cache, and two first starts at once
#   download once.
# - DIR: server.properties, data/ (the KRaft log, formatted on the first start in DIR; a later
#   start in the same DIR, after stop, reuses it: the topics and their records survive),
#   broker.log (log4j2, deploy/local/kafka/log4j2.xml), kafka.out (the JVM's stdout and stderr),
#   kafka.pid. Node 1, PLAINTEXT on 127.0.0.1:PORT only (advertised as such), the controller
#   listener on another free loopback port. Set for one node: offsets and transaction-state
#   topics with replication 1 and min ISR 1, auto-created topics, no initial group rebalance
#   delay; transaction.max.timeout.ms stays Kafka's default (900000).
# - KAFKA_EXTRA_CONFIG: `key=value` lines (newline-separated) appended to server.properties; a
#   key given there overrides the one above (e.g.
#   KAFKA_EXTRA_CONFIG=transaction.abort.timed.out.transaction.cleanup.interval.ms=1000).
# - The JVM: `java` from PATH (17 or later), -Xmx512m, in a session of its own (setsid), so the
#   broker outlives this script; only `stop` ends it.
# - Ready: the broker answers ApiVersions and Metadata on 127.0.0.1:PORT, lists itself and has
#   the cluster id of DIR (deploy/local/kafka/probe.py), within KAFKA_START_TIMEOUT seconds
#   (60); otherwise the broker is stopped, the end of broker.log and kafka.out printed, exit 1.
# - Starting in a DIR whose broker runs is an error naming DIR and the pid.
set -euo pipefail
KAFKA_VERSION=4.1.1
here="$(cd "$(dirname "$0")" && pwd)"
cache="${WEIR_CACHE:-$HOME/.cache/weir}/kafka-$KAFKA_VERSION"
libs="$cache/libs"

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: deploy/local/kafka.sh start DIR PORT | deploy/local/kafka.sh stop DIR" >&2
  exit 2
}

# The pid of the broker running in $1 (an absolute DIR), or nothing. A pid file whose process is
# gone, or is no longer our broker (the pid was reused), counts as no broker.
running_pid() {
  local pid
  pid="$(cat "$1/kafka.pid" 2>/dev/null)" || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $1/server.properties" || return 0
  echo "$pid"
}

# Resolves the jars into $libs once (see above).
fetch_jars() {
  [ -d "$libs" ] && return 0
  command -v mvn >/dev/null || die "mvn not found: Kafka's jars are resolved with Maven on first use; run scripts/install-deps.sh (Debian package maven)"
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  if [ ! -d "$libs" ]; then
    rm -rf "$cache"/libs.tmp.* # left by an interrupted download (we hold the lock)
    local tmp t0
    tmp="$(mktemp -d "$cache/libs.tmp.XXXXXX")"
    cp "$here/kafka/pom.xml" "$tmp/pom.xml"
    echo "kafka.sh: resolving Apache Kafka $KAFKA_VERSION with Maven into $libs (first use only)" >&2
    t0=$SECONDS
    if ! (cd "$tmp" && mvn -B -q dependency:copy-dependencies -DoutputDirectory="$tmp/jars" \
      -DincludeScope=runtime >"$tmp/mvn.log" 2>&1); then
      tail -n 30 "$tmp/mvn.log" >&2
      rm -rf "$tmp"
      die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (log above); check the network or ~/.m2/settings.xml"
    fi
    ls "$tmp/jars"/kafka_2.13-"$KAFKA_VERSION".jar "$tmp/jars"/kafka-tools-"$KAFKA_VERSION".jar >/dev/null ||
      die "Maven finished but the Kafka jars are missing in $tmp/jars"
    mv -T "$tmp/jars" "$libs"
    rm -rf "$tmp"
    echo "kafka.sh: $(ls "$libs" | wc -l) jars in $libs ($((SECONDS - t0)) s)" >&2
  fi
  exec 9>&-
}

# A free TCP port on 127.0.0.1 (the kernel's choice).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_in_use() {
  python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(0)
sys.exit(1)' "$1"
}

print_logs() {
  echo "--- last lines of $1/broker.log ---" >&2
  tail -n 40 "$1/broker.log" >&2 2>/dev/null || echo "(no broker.log)" >&2
  echo "--- last lines of $1/kafka.out ---" >&2
  tail -n 20 "$1/kafka.out" >&2 2>/dev/null || echo "(no kafka.out)" >&2
}

stop_broker() {
  local dir="$1" pid i
  pid="$(running_pid "$dir")"
  if [ -z "$pid" ]; then
    rm -f "$dir/kafka.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do # 20 s
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka.sh: broker $pid in $dir did not stop within 20 s of SIGTERM; SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$dir/kafka.pid"
}

cmd_start() {
  local dir="$1" port="$2"
  [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "PORT must be a TCP port number, got '$port'"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local pid
  pid="$(running_pid "$dir")"
  [ -z "$pid" ] || die "a broker is already running in $dir (pid $pid); stop it first: deploy/local/kafka.sh stop $dir"
  command -v java >/dev/null || die "java not found: the broker needs Java 17 or later; run scripts/install-deps.sh (Debian package openjdk-17-jre-headless)"
  command -v python3 >/dev/null || die "python3 not found (the readiness probe is deploy/local/kafka/probe.py)"
  local jv
  jv="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
  [ -n "$jv" ] && ((jv >= 17)) || die "java on PATH is version '${jv:-unknown}'; Kafka $KAFKA_VERSION needs 17 or later"
  port_in_use "$port" && die "port $port on 127.0.0.1 is already in use; pick another PORT"
  fetch_jars

  local cport
  cport="$(free_port)"
  [ "$cport" != "$port" ] || cport="$(free_port)"
  {
    echo "# written by deploy/local/kafka.sh start $dir $port"
    echo "process.roles=broker,controller"
    echo "node.id=1"
    echo "controller.quorum.voters=1@127.0.0.1:$cport"
    echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
    echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
    echo "controller.listener.names=CONTROLLER"
    echo "inter.broker.listener.name=PLAINTEXT"
    echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    echo "log.dirs=$dir/data"
    echo "offsets.topic.replication.factor=1"
    echo "transaction.state.log.replication.factor=1"
    echo "transaction.state.log.min.isr=1"
    echo "share.coordinator.state.topic.replication.factor=1"
    echo "share.coordinator.state.topic.min.isr=1"
    echo "auto.create.topics.enable=true"
    echo "group.initial.rebalance.delay.ms=0"
    if [ -n "${KAFKA_EXTRA_CONFIG:-}" ]; then
      echo "# KAFKA_EXTRA_CONFIG"
      printf '%s\n' "$KAFKA_EXTRA_CONFIG"
    fi
  } >"$dir/server.properties"

  local jvm=(java -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$here/kafka/log4j2.xml" "-Dkafka.logs.dir=$dir" -cp "$libs/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    # The cluster id: 16 random bytes, URL-safe base64 without padding, as Kafka's
    # Uuid.randomUuid() makes it (also never starting with '-'); python3 saves a JVM start.
    local cid
    cid="$(python3 -c 'import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"): print(s); break')"
    java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
      "-Dlog4j2.configurationFile=$here/kafka/tools-log4j2.xml" -cp "$libs/*" \
      kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" >"$dir/format.out" 2>&1 ||
      {
        cat "$dir/format.out" >&2
        die "formatting the KRaft log in $dir/data failed (output above)"
      }
  fi
  local cluster
  cluster="$(sed -n 's/^cluster.id=//p' "$dir/data/meta.properties")"
  [ -n "$cluster" ] || die "$dir/data/meta.properties has no cluster.id; remove $dir/data to format anew"

  rm -f "$dir/kafka.pid"
  # shellcheck disable=SC2016 # $$ is the inner shell's pid, which exec makes the JVM's
  setsid bash -c 'echo $$ >"$1/kafka.pid"; shift; exec "$@"' _ "$dir" \
    "${jvm[@]}" kafka.Kafka "$dir/server.properties" >"$dir/kafka.out" 2>&1 </dev/null &
  local t0=$SECONDS timeout="${KAFKA_START_TIMEOUT:-60}"
  while :; do
    pid="$(cat "$dir/kafka.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      print_logs "$dir"
      die "the broker in $dir exited during start (logs above)"
    fi
    if [ -n "$pid" ] && python3 "$here/kafka/probe.py" ready "127.0.0.1:$port" "$cluster" 2>/dev/null; then
      echo "kafka.sh: broker $pid on 127.0.0.1:$port ready in $((SECONDS - t0)) s (dir $dir)" >&2
      return 0
    fi
    if ((SECONDS - t0 >= timeout)); then
      print_logs "$dir"
      stop_broker "$dir"
      die "no broker answered metadata on 127.0.0.1:$port within $timeout s (logs above; files in $dir)"
    fi
    sleep 0.2
  done
}

cmd_stop() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  stop_broker "$(cd "$dir" && pwd)"
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
