#!/usr/bin/env bash
# Sets up podman for weir's container image and container tests (deploy/docker/README.md):
# Debian's podman with runc as its runtime (crun fails on this kernel's cgroups) and default
# ulimits the machine can grant (podman's defaults exceed them); catatonit, the init of the pods'
# infra (pause) containers, which podman only Recommends (a fresh machine installing with
# --no-install-recommends has no `podman pod create` without it); netavark with aardvark-dns as
# the network backend, whose DNS resolves pod names and network aliases on a podman network (the
# CNI backend podman falls back to without them resolves nothing: task managers never find the
# job manager's Service name). Idempotent: apt runs only when a
# package is missing, and containers.conf is rewritten only when it lacks one of the settings.
# Called by deploy/docker/build.sh and the container tests, not by scripts/install-deps.sh: a
# developer without podman can still build and test weir.
set -euo pipefail
PKGS=(podman runc catatonit netavark aardvark-dns debootstrap uidmap slirp4netns
      containernetworking-plugins)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "podman-setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
conf=/etc/containers/containers.conf
want_runtime='runtime = "runc"'
want_ulimits='default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]'
want_backend='network_backend = "netavark"'
if ! { [ -f "$conf" ] && grep -qxF "$want_runtime" "$conf" && grep -qxF "$want_ulimits" "$conf" &&
  grep -qxF "$want_backend" "$conf"; }; then
  echo "podman-setup: writing $conf (runc, ulimits nofile/nproc 16384, netavark)"
  [ -f "$conf" ] && $SUDO cp "$conf" "$conf.weir-backup"
  $SUDO mkdir -p /etc/containers
  printf '[containers]\n%s\n[engine]\n%s\n[network]\n%s\n' "$want_ulimits" "$want_runtime" \
    "$want_backend" | $SUDO tee "$conf.tmp" >/dev/null
  $SUDO mv "$conf.tmp" "$conf"
fi
echo "podman-setup: podman $(podman --version | awk '{print $3}'), runtime runc, ulimits 16384," \
  "network backend $(podman info --format '{{.Host.NetworkBackend}}')"
