#!/usr/bin/env bash
# Builds weir's container image: deploy/docker/build.sh [TAG]   (default localhost/weir:dev)
# 1. podman is set up (scripts/podman-setup.sh: runc, containers.conf ulimits);
# 2. the base image localhost/weir-debian:bookworm exists: imported from a debootstrap minbase
#    bookworm tarball cached at ${WEIR_CACHE:-$HOME/.cache/weir}/podman/ (made on first use,
#    about a minute; no registry is needed);
# 3. podman build from the repository root with --format docker (the OCI format drops
#    HEALTHCHECK). The version and revision labels are also given with --label: buildah reuses a
#    cached LABEL layer although the build argument in it changed. Idempotent; layers are cached, so a rebuild after a source edit recompiles
#    only. Environment: WEIR_BASE_IMAGE (another base, e.g. docker.io/library/debian:bookworm-slim,
#    skips step 2), WEIR_BUILD_JOBS (make -j, default: the number of cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tag=${1:-localhost/weir:dev}
bash "$root/scripts/podman-setup.sh" >/dev/null
base=${WEIR_BASE_IMAGE:-localhost/weir-debian:bookworm}
if [ "$base" = localhost/weir-debian:bookworm ] && ! podman image exists "$base"; then
  cache=${WEIR_CACHE:-$HOME/.cache/weir}/podman
  tarball=$cache/debian-bookworm-minbase.tar
  if [ ! -s "$tarball" ]; then
    mkdir -p "$cache"
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs" "$tarball.part"' EXIT
    echo "build.sh: debootstrap --variant=minbase bookworm (cached at $tarball)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
  fi
  echo "build.sh: podman import $tarball as $base"
  podman import --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tarball" "$base" >/dev/null
fi
old_id=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
version=$(sed -n 's/^project(weir VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
podman build --format docker -f "$root/deploy/docker/Containerfile" -t "$tag" \
  --build-arg BASE="$base" --build-arg JOBS="${WEIR_BUILD_JOBS:-$(nproc)}" \
  --build-arg VERSION="${version:-0.0.0}" --build-arg REVISION="$revision" \
  --label org.opencontainers.image.version="${version:-0.0.0}" \
  --label org.opencontainers.image.revision="$revision" "$root"
# The image this tag named before, now untagged: removed unless a container still uses it (the
# build stage's untagged images stay: they are the compile cache; `podman image prune` drops them).
new_id=$(podman image inspect --format '{{.Id}}' "$tag")
# (Only when no other tag names it: podman 4.3's `rmi ID` removes every tag of an image.)
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ] &&
  [ "$(podman image inspect --format '{{len .RepoTags}}' "$old_id" 2>/dev/null)" = 0 ]; then
  podman rmi "$old_id" >/dev/null 2>&1 || true
fi
echo "build.sh: built $tag (base $base, revision $revision)"
