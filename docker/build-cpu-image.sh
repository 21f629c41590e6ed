#!/usr/bin/env bash
# Build repogen/tritonserver-cpu: a CPU-only Triton image (tritonserver 2.51 from nvidia-pytriton, laid out at
# NGC's /opt/tritonserver paths, Python backend, numpy 1.26, Paddle Inference, repogen) on a Debian base made
# here with debootstrap, so nothing is pulled from a container registry.
#
#   docker/build-cpu-image.sh [--engine podman|docker] [--tag repogen/tritonserver-cpu:latest] [--rebuild]
#
# Needs root for debootstrap and a rootful engine. With podman and no CONTAINERS_CONF set, it writes a
# private containers.conf (lower default ulimits, runc, cgroupfs) beside the build cache instead of
# touching /etc/containers; see docs/docker.md.
set -euo pipefail

ENGINE=${ENGINE:-}
TAG=repogen/tritonserver-cpu:latest
BASE_TAG=repogen/debian-base:bookworm
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
REBUILD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) ENGINE=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-cpu-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cache=${REPOGEN_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/repogen-container}
mkdir -p "$cache"

if [ -z "$ENGINE" ]; then
  if command -v podman >/dev/null; then ENGINE=podman
  elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
  else echo "build-cpu-image.sh: no container engine (podman or docker) found" >&2; exit 2; fi
fi
if [ "$(basename "$ENGINE")" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  # The sandboxes this was made on lack CAP_SYS_RESOURCE (the runtime's default rlimits fail) and mix
  # cgroup layouts (crun refuses them): ulimits below the current hard limit, runc, cgroupfs.
  hard=$(ulimit -Hn); nofile=$(( hard < 65536 ? hard : 65536 ))
  # nproc: 65536 was refused here even below the hard limit; 32768 threads per uid is ample for Triton
  hard=$(ulimit -Hu); [ "$hard" = unlimited ] && hard=32768; nproc=$(( hard < 32768 ? hard : 32768 ))
  cat > "$cache/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  export CONTAINERS_CONF="$cache/containers.conf"
  echo "CONTAINERS_CONF=$CONTAINERS_CONF (export it for podman run/ps, and for repogen --server docker)" >&2
fi

if [ "$REBUILD" = 1 ] || ! $ENGINE image inspect "$BASE_TAG" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "build-cpu-image.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap $SUITE (minbase) from $MIRROR ..." >&2
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" > "$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  # apt inside the image uses the same mirror; the host's CA bundle lets pip reach PyPI through any TLS proxy
  echo "deb $MIRROR $SUITE main" > "$rootfs/etc/apt/sources.list"
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/debootstrap"
  tar -C "$rootfs" -c . | $ENGINE import - "$BASE_TAG" >/dev/null
  rm -rf "$rootfs"; trap - EXIT
fi

ca=/etc/ssl/certs/ca-certificates.crt
mounts=()
[ -f "$ca" ] && mounts+=(--volume "$ca:/etc/ssl/certs/host-ca.crt:ro" --build-arg PIP_CERT=/etc/ssl/certs/host-ca.crt)
mkdir -p "$cache/pip"
mounts+=(--volume "$cache/pip:/root/.cache/pip")
echo "$ENGINE build -t $TAG ..." >&2
$ENGINE build --network host "${mounts[@]}" --build-arg "BASE_IMAGE=localhost/$BASE_TAG" \
  -f "$here/Dockerfile.cpu" -t "$TAG" "$root"
echo "$TAG"
