#!/usr/bin/env bash
# Builds the SeaweedFS server binary `weed` (the S3 server of the tests, the benchmarks and
# deploy/local/s3.sh) from source with Go, into
#   ${WEIR_TOOLS:-$HOME/.cache/weir-tools}/seaweedfs/bin/weed
# outside the repo, and prints its path. Idempotent: when the binary of the pinned version is there
# (the stamp file bin/weed.version names it), nothing is downloaded or built.
#
# Why not `go install github.com/seaweedfs/seaweedfs/weed@VERSION`: seaweedfs' go.mod has replace
# directives, which `go install pkg@version` refuses. So the module is fetched into the Go module
# cache with `go mod download` (the Go module proxy, the ordinary client), copied to a temporary
# directory (the module cache is read-only) and built there with `go build -o ... ./weed`. The
# binary is written under a temporary name and renamed into place under a lock: an interrupted
# build never leaves a half binary, and two first runs at once build once.
#
# Needs Go (1.26 or later, as the pinned seaweedfs' go.mod says) on PATH or in /usr/local/go/bin.
# The first build takes several minutes and ~2 GB of Go build cache; WEED_BUILD_JOBS (default 2)
# bounds its parallelism (go build -p).
set -euo pipefail
SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
cache="${WEIR_TOOLS:-$HOME/.cache/weir-tools}/seaweedfs"
bin="$cache/bin/weed"
stamp="$cache/bin/weed.version"

die() {
  echo "install-seaweedfs: $*" >&2
  exit 1
}

have() {
  [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$SEAWEEDFS_VERSION" ] && "$bin" version >/dev/null 2>&1
}

if have; then
  echo "$bin"
  exit 0
fi

# A binary without a stamp (built by hand from the same version, e.g. before this script existed)
# is accepted when `weed version` runs: the stamp is written then. WEED_REBUILD=1 forces a build.
if [ -z "${WEED_REBUILD:-}" ] && [ -x "$bin" ] && [ ! -e "$stamp" ] && "$bin" version >/dev/null 2>&1; then
  echo "$SEAWEEDFS_VERSION" >"$stamp"
  echo "install-seaweedfs: adopting the existing $bin ($("$bin" version 2>&1 | head -n 1))" >&2
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null; then
  [ -x /usr/local/go/bin/go ] && PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || die "go not found: SeaweedFS is built from source; install Go 1.26 or later (https://go.dev/dl/) and put it on PATH"

mkdir -p "$cache/bin"
exec 9>"$cache/.lock"
flock 9
if have; then # built by a concurrent run while we waited for the lock
  echo "$bin"
  exit 0
fi
rm -rf "$cache"/src.tmp.* "$cache"/bin/weed.tmp.* # left by an interrupted build (we hold the lock)

modcache="$(go env GOMODCACHE)"
src="$modcache/$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION"
if [ ! -d "$src/weed" ]; then
  echo "install-seaweedfs: fetching $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION into the Go module cache" >&2
  (cd "$cache" && go mod download "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION") ||
    die "go mod download $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION failed (above); check the network or GOPROXY"
  [ -d "$src/weed" ] || die "go mod download finished but $src/weed is missing"
fi

tmp="$(mktemp -d "$cache/src.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/." "$tmp/"
chmod -R u+w "$tmp"
echo "install-seaweedfs: building weed $SEAWEEDFS_VERSION (first use only; several minutes)" >&2
t0=$SECONDS
out="$(mktemp "$cache/bin/weed.tmp.XXXXXX")"
if ! (cd "$tmp" && GOFLAGS=-buildvcs=false go build -p "${WEED_BUILD_JOBS:-2}" -o "$out" ./weed); then
  rm -f "$out"
  die "go build of $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION/weed failed (above)"
fi
"$out" version >/dev/null 2>&1 || {
  rm -f "$out"
  die "the built weed does not run ($out version failed)"
}
chmod 0755 "$out"
mv -f "$out" "$bin"
echo "$SEAWEEDFS_VERSION" >"$stamp"
echo "install-seaweedfs: $bin built in $((SECONDS - t0)) s" >&2
echo "$bin"
