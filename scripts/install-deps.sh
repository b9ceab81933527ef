#!/usr/bin/env bash
# Installs weir's build and test dependencies from Debian 12 packages, then the tests' Python
# packages (scripts/python-deps.sh). Idempotent: packages that are already installed are skipped,
# and apt-get (pip) runs only when something is missing. The Kafka broker's jars are not fetched
# here: deploy/local/kafka.sh resolves them with Maven on first use. SeaweedFS (the S3 server of the
# tests) is built from source with Go once by scripts/install-seaweedfs.sh (needs Go 1.26+).
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang-format python3 procps coreutils
  librocksdb-dev      # keyed state
  libzmq3-dev         # data plane and job manager <-> task manager RPC
  libmsgpack-dev      # record values and RPC messages (msgpack-c)
  librdkafka-dev      # Kafka connectors
  libcmocka-dev       # unit tests
  libmicrohttpd-dev   # job manager REST server
  libjansson-dev      # JSON for REST and job graphs
  libyaml-dev         # weir.yaml configuration files
  libssl-dev          # sha256 of plugin blobs (libcrypto)
  libcurl4-openssl-dev # HTTP client in the weir CLI
  libxml2-dev         # the S3 backend's answers (storage/s3_xml.c)
  openssl             # the openssl command: test certificates (tests/integration/08_rest_security.py)
  clang               # libFuzzer targets (tests/fuzz; `make test` runs them briefly) ...
  libclang-rt-14-dev  # ... and libFuzzer itself, with the sanitizer runtimes of clang 14
  openjdk-17-jre-headless # the local Apache Kafka broker (deploy/local/kafka.sh) and Kafka's tools
  openjdk-17-jdk-headless # javac for the Flink harness (bench/flink; tests/bench/01_flink_generator.py)
  maven               # resolves the broker's jars on first use (deploy/local/kafka/pom.xml)
  kcat                # produces the Kafka tests' input (tests/lib/kafkatest.py)
  python3-venv        # the venv of scripts/python-deps.sh (kafka-python, the tests' Kafka consumer)
  chromium            # headless browser of the dashboard test (tests/integration/32_dashboard.py) ...
  python3-websocket   # ... driven over the DevTools protocol (websocket-client, pure Python)
  prometheus          # promtool check metrics: /metrics of task managers (tests/integration/33_rest_flink.py, 34_tm_metrics.py)
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Python packages from PyPI, into a venv outside the repo (idempotent: no network when present).
bash "$(dirname "$0")/python-deps.sh"
# SeaweedFS, the S3 server of the tests (deploy/local/s3.sh): built from source with Go, cached.
bash "$(dirname "$0")/install-seaweedfs.sh"
