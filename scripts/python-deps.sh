#!/usr/bin/env bash
# Installs the Python packages of the tests from PyPI into a virtual environment outside the repo,
# ${WEIR_CACHE:-$HOME/.cache/weir}/venv (Debian's pip refuses installs into the system Python,
# PEP 668). Idempotent: when every pinned version is already there, pip is not run (no network).
# scripts/install-deps.sh calls it. The tests do not run the venv's python: tests/lib/kafkatest.py
# puts the venv's site-packages on sys.path of the python3 that ctest runs (the packages are pure
# Python).
#   kafka-python  a Kafka client that is not librdkafka: the read_committed / read_uncommitted
#                 consumer and the transactional producer of the Kafka tests
#   jsonschema    a JSON Schema (Draft 2020-12) validator weir did not write, and PyYAML to read
#   PyYAML        docs/openapi.yaml: tests/integration/33_rest_flink.py checks REST answers with them
#   boto3         AWS's S3 client (with botocore, s3transfer, jmespath, python-dateutil, urllib3): the
#                 independent oracle of the S3 tests (tests/lib/s3test.py): buckets, listings, copies
set -euo pipefail
venv="${WEIR_CACHE:-$HOME/.cache/weir}/venv"
REQS=(
  kafka-python==3.0.12
  jsonschema==4.26.0
  PyYAML==6.0.4
  boto3==1.43.11
)

have_all() {
  [ -x "$venv/bin/python" ] || return 1
  "$venv/bin/python" - "${REQS[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for req in sys.argv[1:]:
    name, want = req.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

if have_all; then
  echo "python-deps: ${REQS[*]} present in $venv"
  exit 0
fi
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9 # two first runs at once install once
if ! have_all; then
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || {
      rm -rf "$venv"
      echo "python-deps: python3 -m venv failed; install the Debian package python3-venv (scripts/install-deps.sh)" >&2
      exit 1
    }
  fi
  echo "python-deps: installing ${REQS[*]} into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${REQS[@]}"
  have_all || {
    echo "python-deps: pip finished but ${REQS[*]} are not all in $venv" >&2
    exit 1
  }
fi
