#!/usr/bin/env bash
# Podman (daemonless containers) for the container test, configured for this kind of
# machine, and a local Debian base image (no registry pulls are possible here).
#
# Usage:
#   scripts/tools/podman.sh [ensure]      install podman/buildah/runc, write the config;
#                                         prints CONTAINERS_CONF= CONTAINERS_STORAGE_CONF=
#   scripts/tools/podman.sh base [SUITE]  ensure, then the base image (once; default
#                                         bookworm); also prints TACIT_BASE_IMAGE=
#   scripts/tools/podman.sh python-base [SUITE]
#                                         the same with Debian's python3 and venv
#                                         (localhost/tacit-debian-python:SUITE, for the
#                                         face factor's image)
#   scripts/tools/podman.sh --selftest    base, then `podman run --rm` in it
# Not root: prints "SKIP: podman needs root here ..." and exits 3.
#
# Why a config of our own: the defaults fail on these machines (cgroup v1 hybrid, root
# without CAP_SYS_RESOURCE, no systemd). containers.conf sets explicit ulimits, runc,
# cgroupfs and file events; storage.conf uses overlay with the image store under
# $TACIT_TOOLS_DIR/podman/storage (kept: the base image is built once) and the run state
# under /run/tacit-podman (dropped when the boot id changes). Neither touches the
# system's /etc/containers or /var/lib/containers. Callers export both variables:
#   set -a; eval "$(scripts/tools/podman.sh base)"; set +a
#
# The base image is `debootstrap --variant=minbase SUITE` (+ ca-certificates) imported
# with `podman import` as localhost/tacit-debian:SUITE; a label holds the hash of the
# suite and package list, so a changed list rebuilds it. Mirror: the host's (see
# lib.sh debian_mirror), override TACIT_DEBIAN_MIRROR.
#
# Measured here (Debian 12, 2 cores): see scripts/tools/README.md.
set -euo pipefail

# Packages debootstrap adds to the minbase system (the runtime needs CA roots for S3 and
# PostgreSQL over TLS).
BASE_INCLUDE=(ca-certificates)
# The Python base adds Debian's interpreter (3.11 on bookworm, as on the hosts that build
# the wheels it installs).
PYTHON_INCLUDE=(ca-certificates python3 python3-venv)

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

PD="$TACIT_TOOLS_DIR/podman"
RUNROOT="${TACIT_PODMAN_RUNROOT:-/run/tacit-podman}"

usage() {
  sed -n '5,15p' "$0" >&2
  exit 2
}

write_config() {
  mkdir -p "$PD/storage"
  # Run state from an earlier boot (here /run is not a tmpfs) would confuse podman.
  local boot
  boot="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)"
  if [ -d "$RUNROOT" ] && [ "$(cat "$RUNROOT/.boot_id" 2>/dev/null || true)" != "$boot" ]; then
    log "dropping run state of an earlier boot in $RUNROOT"
    umount_below "$RUNROOT"
    rm -rf --one-file-system "$RUNROOT"
  fi
  mkdir -p "$RUNROOT"
  echo "$boot" >"$RUNROOT/.boot_id"
  local tmp
  tmp="$(mktemp "$PD/.conf.XXXXXX")"
  cat >"$tmp" <<EOF
# Written by scripts/tools/podman.sh (use with CONTAINERS_CONF=$PD/containers.conf).
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$RUNROOT/libpod"
EOF
  mv "$tmp" "$PD/containers.conf"
  tmp="$(mktemp "$PD/.conf.XXXXXX")"
  cat >"$tmp" <<EOF
# Written by scripts/tools/podman.sh (use with CONTAINERS_STORAGE_CONF=$PD/storage.conf).
[storage]
driver = "overlay"
graphroot = "$PD/storage"
runroot = "$RUNROOT/storage"
EOF
  mv "$tmp" "$PD/storage.conf"
  export CONTAINERS_CONF="$PD/containers.conf" CONTAINERS_STORAGE_CONF="$PD/storage.conf"
}

do_ensure() {
  take_lock podman
  apt_install podman buildah runc
  write_config
  local out
  out="$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}} {{.Host.CgroupManager}}' 2>&1)" ||
    die "podman info failed: $out"
  log "podman $(podman version --format '{{.Client.Version}}' 2>/dev/null) ready ($out)"
}

ensure() {
  if ! is_root; then
    echo "SKIP: podman needs root here (apt-get install, overlay storage, container networking)" >&2
    exit 3
  fi
  (do_ensure) # subshell: the lock is released when it returns
  export CONTAINERS_CONF="$PD/containers.conf" CONTAINERS_STORAGE_CONF="$PD/storage.conf"
}

# base_image SUITE [IMAGE PACKAGES...]: the debootstrap image (default: the plain base).
base_image() {
  local suite="$1" image="${2:-localhost/tacit-debian:$1}" want have
  local include=("${BASE_INCLUDE[@]}")
  if [ "$#" -gt 2 ]; then include=("${@:3}"); fi
  want="$(printf '%s\n' "$suite" "${include[@]}" | hash_text)"
  take_lock podman-base
  have="$(podman image inspect --format '{{index .Labels "tacit.base"}}' "$image" 2>/dev/null || true)"
  if [ "$have" = "$want" ]; then
    log "base image $image up to date"
    echo "$image"
    return 0
  fi
  apt_install debootstrap
  local t0=$SECONDS mirror dir="$PD/rootfs-$suite-${image##*/}" dlog="$PD/debootstrap-$suite.log" inc ns=()
  mirror="$(debian_mirror)"
  remove_tree "$dir"
  inc="$(
    IFS=,
    echo "${include[*]}"
  )"
  log "debootstrap --variant=minbase --include=$inc $suite $mirror (log $dlog)"
  # debootstrap mounts /proc and /sys in the target: keep those mounts in a private
  # namespace where possible so that nothing is left mounted if it is killed.
  if unshare --mount --propagation private true 2>/dev/null; then ns=(unshare --mount --propagation private); fi
  if ! "${ns[@]}" debootstrap --variant=minbase --include="$inc" "$suite" "$dir" "$mirror" >"$dlog" 2>&1; then
    umount_below "$dir"
    tail -n 20 "$dlog" >&2
    die "debootstrap failed (log: $dlog)"
  fi
  umount_below "$dir"
  rm -rf "${dir:?}"/var/cache/apt/archives/*.deb "${dir:?}"/var/lib/apt/lists/* "${dir:?}"/var/log/*.log
  log "podman import -> $image"
  tar --numeric-owner -C "$dir" -c . |
    podman import --change 'CMD ["/bin/bash"]' --change "LABEL tacit.base=$want" \
      --message "debootstrap --variant=minbase $suite" - "$image" >&2 ||
    die "podman import failed"
  remove_tree "$dir"
  log "base image $image ready in $((SECONDS - t0)) s"
  echo "$image"
}

selftest() {
  local image="$1" out
  out="$(podman run --rm --network none "$image" sh -c '. /etc/os-release && echo "$ID $VERSION_CODENAME $(id -u)"')" ||
    die "selftest: podman run failed"
  log "selftest ok: $out"
}

cmd="${1:-ensure}"
case "$cmd" in
  ensure)
    ensure
    ;;
  base | --selftest)
    suite="${2:-bookworm}"
    [ "$cmd" = base ] || suite=bookworm
    ensure
    image="$(base_image "$suite")"
    [ "$cmd" = base ] || selftest "$image"
    ;;
  python-base)
    suite="${2:-bookworm}"
    ensure
    image="$(base_image "$suite" "localhost/tacit-debian-python:$suite" "${PYTHON_INCLUDE[@]}")"
    ;;
  *) usage ;;
esac
emit CONTAINERS_CONF "$PD/containers.conf"
emit CONTAINERS_STORAGE_CONF "$PD/storage.conf"
if [ -n "${image:-}" ]; then emit TACIT_BASE_IMAGE "$image"; fi
