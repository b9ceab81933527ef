#!/usr/bin/env bash
# Installs weir's build and test dependencies from Debian 12 packages. Idempotent: packages that
# are already installed are skipped, and apt-get runs only when something is missing.
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
  openssl             # the openssl command: test certificates (tests/integration/08_rest_security.py)
  clang               # libFuzzer targets (tests/fuzz; `make test` runs them briefly) ...
  libclang-rt-14-dev  # ... and libFuzzer itself, with the sanitizer runtimes of clang 14
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
