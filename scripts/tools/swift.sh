#!/usr/bin/env bash
# Swift toolchain for the uniffi Swift bindings tests. There is no Swift compiler for
# Debian 12, so this builds a Debian trixie chroot (debootstrap --variant=minbase) at
# $TACIT_TOOLS_DIR/swift-chroot holding trixie's `swiftlang` (Swift 6.0.x) and runs
# commands in it. Needs root (debootstrap, mount, chroot).
#
# Usage:
#   scripts/tools/swift.sh ensure [--selftest]  build/refresh the chroot (idempotent; stamp
#                                               file); prints SWIFT_CHROOT=<path> on stdout
#   scripts/tools/swift.sh run DIR -- CMD...    run CMD in the chroot with DIR bind-mounted
#                                               at /work (env TACIT_SWIFT_MOUNT) as cwd;
#                                               exits with CMD's status; runs `ensure` first
#   scripts/tools/swift.sh --selftest           ensure, then compile+run hello.swift inside
# Not root: prints "SKIP: swift needs root to build its chroot" and exits 3.
# The mirror is the host's own Debian mirror (from /etc/apt/sources.list*), override with
# TACIT_DEBIAN_MIRROR. Mounts are made in a private mount namespace (unshare) when
# possible, so nothing leaks onto the host even if the script is killed; a trap unmounts
# them as well. Files that CMD writes into DIR are owned by root.
#
# Measured here (Debian 12, 2 cores, deb.debian.org): cold `ensure` 63-130 s over two
# runs (debootstrap + swiftlang install; chroot 2.6 GB); warm `ensure` 0.02 s;
# `--selftest` on a warm chroot 0.5 s; changing CHROOT_PACKAGES reuses the base (~3 s).
set -euo pipefail

SUITE=trixie
# Packages installed in the chroot (apt's recommends included: swiftc needs them to link).
# libsodium-dev: Ed25519 for the Swift binding test's check of a signed verdict (Linux
# Swift has no CryptoKit).
CHROOT_PACKAGES=(swiftlang libsodium-dev)

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

CH="$TACIT_TOOLS_DIR/swift-chroot"
BASE_STAMP=.tacit-base-ready
PKG_STAMP=.tacit-swift-ready
MOUNT_AT="${TACIT_SWIFT_MOUNT:-/work}"
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() {
  sed -n '7,13p' "$0" >&2
  exit 2
}

# TACIT_SWIFT_NO_UNSHARE=1 forces the host-mount fallback (for testing it).
have_unshare() {
  [ -z "${TACIT_SWIFT_NO_UNSHARE:-}" ] && unshare --mount --propagation private true 2>/dev/null
}

# chroot_exec BIND_DIR CMD...: CMD inside $CH with /proc mounted and, unless BIND_DIR is
# empty, BIND_DIR bind-mounted at $MOUNT_AT (the cwd). Uses a private mount namespace when
# unshare works (mounts vanish with it); otherwise mounts on the host under a lock and
# unmounts them in a trap.
chroot_exec() {
  if have_unshare; then
    unshare --mount --propagation private "$0" __exec "$@"
  else
    (
      take_lock swift-mounts
      chroot_exec_here "$@"
    )
  fi
}

chroot_exec_here() {
  local bind="$1" child="" rc=0 cwd=/
  shift
  # Leftovers of a killed run (we hold the lock or are in our own namespace).
  umount_below "$CH$MOUNT_AT"
  trap 'umount_below "$CH$MOUNT_AT"; umount_below "$CH/proc"' EXIT
  trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null; exit 143' TERM HUP
  trap '[ -z "$child" ] || kill -INT "$child" 2>/dev/null; exit 130' INT
  mountpoint -q "$CH/proc" || mount -t proc proc "$CH/proc"
  if [ -n "$bind" ]; then
    mkdir -p "$CH$MOUNT_AT"
    mount --bind "$bind" "$CH$MOUNT_AT"
    cwd="$MOUNT_AT"
  fi
  # In the background so that a signal to this script runs the traps at once; stdin is
  # passed on explicitly (background jobs otherwise get /dev/null).
  exec 3<&0
  # shellcheck disable=SC2016 # expanded by the inner sh
  chroot "$CH" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH="$CHROOT_PATH" \
    DEBIAN_FRONTEND=noninteractive TERM="${TERM:-dumb}" \
    sh -c 'cd "$1" && shift && exec "$@"' sh "$cwd" "$@" <&3 3<&- &
  child=$!
  wait "$child" || rc=$?
  exit "$rc"
}

do_ensure() {
  take_lock swift
  local want
  want="$(printf '%s\n' "$SUITE" "${CHROOT_PACKAGES[@]}" | hash_text)"
  if [ -f "$CH/$PKG_STAMP" ] && [ "$(cat "$CH/$PKG_STAMP")" = "$want" ] && [ -x "$CH/usr/bin/swiftc" ]; then
    log "chroot $CH up to date"
    return 0
  fi
  local t0=$SECONDS
  if ! [ -f "$CH/$BASE_STAMP" ]; then
    apt_install debootstrap
    local mirror tmp="$CH.tmp" dlog="$TACIT_TOOLS_DIR/swift-debootstrap.log"
    mirror="$(debian_mirror)"
    remove_tree "$tmp"
    remove_tree "$CH"
    log "debootstrap --variant=minbase $SUITE $mirror (log $dlog)"
    local ns=()
    if have_unshare; then ns=(unshare --mount --propagation private); fi
    if ! "${ns[@]}" debootstrap --variant=minbase "$SUITE" "$tmp" "$mirror" >"$dlog" 2>&1; then
      umount_below "$tmp"
      tail -n 20 "$dlog" >&2
      die "debootstrap failed (log: $dlog)"
    fi
    umount_below "$tmp"
    touch "$tmp/$BASE_STAMP"
    mv "$tmp" "$CH"
  fi
  rm -f "$CH/$PKG_STAMP"
  cp -L /etc/resolv.conf "$CH/etc/resolv.conf" 2>/dev/null || true
  local alog="$TACIT_TOOLS_DIR/swift-apt.log"
  log "apt-get install ${CHROOT_PACKAGES[*]} in the chroot (log $alog)"
  if ! chroot_exec "" sh -c 'apt-get update -q && apt-get install -y -q "$@" && apt-get clean' sh \
    "${CHROOT_PACKAGES[@]}" >"$alog" 2>&1; then
    tail -n 20 "$alog" >&2
    die "apt-get install ${CHROOT_PACKAGES[*]} in the chroot failed (log: $alog)"
  fi
  chroot_exec "" swiftc --version >&2 || die "swiftc does not run in the chroot"
  printf '%s\n' "$want" >"$CH/$PKG_STAMP"
  log "chroot ready in $((SECONDS - t0)) s"
}

ensure() {
  if ! is_root; then
    echo "SKIP: swift needs root to build its chroot" >&2
    exit 3
  fi
  (do_ensure) # subshell: the lock is released when it returns
}

run() {
  local dir="$1"
  shift
  [ -d "$dir" ] || die "not a directory: $dir"
  dir="$(cd "$dir" && pwd -P)"
  [ "$#" -gt 0 ] || die "run: no command given"
  ensure
  chroot_exec "$dir" "$@"
}

selftest() {
  local tmp rc=0 out
  tmp="$(mktemp -d)"
  printf '%s\n' 'let words = ["hello", "from", "swift"]' 'print(words.joined(separator: " "))' >"$tmp/hello.swift"
  log "selftest: swiftc hello.swift inside the chroot"
  out="$(run "$tmp" sh -c 'swiftc -o hello hello.swift && ./hello')" || rc=$?
  rm -rf "$tmp"
  [ "$rc" -eq 0 ] || die "selftest: swiftc or ./hello failed (exit $rc)"
  [ "$out" = "hello from swift" ] || die "selftest: unexpected output: $out"
  log "selftest ok: $out"
}

case "${1:-}" in
  ensure)
    ensure
    [ "${2:-}" != --selftest ] || selftest
    emit SWIFT_CHROOT "$CH"
    ;;
  --selftest)
    ensure
    selftest
    emit SWIFT_CHROOT "$CH"
    ;;
  run)
    if [ "$#" -lt 4 ] || [ "$3" != -- ]; then usage; fi
    dir="$2"
    shift 3
    run "$dir" "$@"
    ;;
  __exec) # internal: inside the private mount namespace
    shift
    chroot_exec_here "$@"
    ;;
  *) usage ;;
esac
