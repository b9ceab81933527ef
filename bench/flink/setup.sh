#!/usr/bin/env bash
# Installs Apache Flink 2.3.0's distribution (the PyPI package apache-flink ships it: bin/
# scripts, lib/flink-dist with the RocksDB state backend) into a venv outside the repo, for
# bench/flink/flinkcluster.py's standalone cluster. Idempotent.
#   bench/flink/setup.sh            venv: $WEIR_FLINK_VENV (default ~/.cache/weir/venv-flink)
set -euo pipefail
venv="${WEIR_FLINK_VENV:-$HOME/.cache/weir/venv-flink}"
if ! compgen -G "$venv/lib/python3*/site-packages/pyflink/bin/jobmanager.sh" >/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'apache-flink==2.3.0'
fi
ls -d "$venv"/lib/python3*/site-packages/pyflink
