#!/usr/bin/env bash
# Installs the Kubernetes tools of tests/deploy/ outside the repo, under
# ${WEIR_CACHE:-$HOME/.cache/weir}, and prints their paths (last two lines: `helm=PATH` and
# `kubernetes-validate=PATH`, for scripts to read):
#   helm                  built from source with `go install helm.sh/helm/v3/cmd/helm@VERSION`
#                         through the Go module proxy (v3.22.0; v3.21.4 once if that fails).
#                         GOPATH, GOMODCACHE, GOBIN and GOCACHE are all under <cache>/go.
#   kubernetes-validate   from PyPI into the venv of scripts/python-deps.sh (<cache>/venv); the
#                         package ships the Kubernetes JSON schemas, so validation is offline.
#                         A helm built by go install has no default Kubernetes version (it
#                         assumes v1.20): give `helm template`/`lint` a --kube-version.
# Idempotent: when the wanted versions are present, neither go nor pip runs (no network).
# Two first runs at once install once (flock). Not called by scripts/install-deps.sh: only the
# deploy tests need these tools.
set -euo pipefail
cache="${WEIR_CACHE:-$HOME/.cache/weir}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_VERSIONS=(v3.22.0 v3.21.4)
KV_VERSION=1.37.0

gobase="$cache/go"
export GOPATH="$gobase" GOMODCACHE="$gobase/pkg/mod" GOBIN="$gobase/bin" GOCACHE="$gobase/build-cache"
export GOFLAGS="${GOFLAGS:-} -modcacherw" # the module cache can be deleted with rm -rf
helm="$GOBIN/helm"
venv="$cache/venv"
kv="$venv/bin/kubernetes-validate"

# The module version go install built (`helm version` says only "v3.22": go install sets no
# version ldflags).
helm_version() {
  [ -x "$helm" ] && command -v go >/dev/null &&
    go version -m "$helm" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }'
}
helm_ok() {
  local have v
  have="$(helm_version)" || return 1
  for v in "${HELM_VERSIONS[@]}"; do [ "$have" = "$v" ] && return 0; done
  return 1
}
kv_ok() {
  [ -x "$kv" ] && "$venv/bin/python" - "$KV_VERSION" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version("kubernetes-validate") == sys.argv[1] else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
}

# The Go toolchain of a machine that has one outside PATH (a non-login shell, CI).
command -v go >/dev/null || { [ -x /usr/local/go/bin/go ] && PATH="$PATH:/usr/local/go/bin"; }

mkdir -p "$cache"
exec 9>"$cache/k8s-tools.lock"
flock 9

if ! helm_ok; then
  command -v go >/dev/null || {
    echo "k8s-tools: go is not on PATH; install Go (https://go.dev/dl) to build helm" >&2
    exit 1
  }
  mkdir -p "$GOBIN"
  for v in "${HELM_VERSIONS[@]}"; do
    echo "k8s-tools: go install helm.sh/helm/v3/cmd/helm@$v (a few minutes the first time)"
    if go install "helm.sh/helm/v3/cmd/helm@$v"; then break; fi
    echo "k8s-tools: helm $v failed to install" >&2
  done
  helm_ok || {
    echo "k8s-tools: no helm of ${HELM_VERSIONS[*]} in $GOBIN after go install" >&2
    exit 1
  }
fi

if ! kv_ok; then
  bash "$here/python-deps.sh" >/dev/null # creates the venv (the shared convention)
  echo "k8s-tools: installing kubernetes-validate==$KV_VERSION into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
  kv_ok || {
    echo "k8s-tools: pip finished but kubernetes-validate $KV_VERSION is not in $venv" >&2
    exit 1
  }
fi

echo "k8s-tools: helm $(helm_version), kubernetes-validate $KV_VERSION"
echo "helm=$helm"
echo "kubernetes-validate=$kv"
