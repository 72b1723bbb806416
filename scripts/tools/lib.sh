# shellcheck shell=bash
# Shared helpers for scripts/tools/*.sh. Source it; do not run it.
#
# Conventions of every tool script:
#   - progress and errors go to stderr, prefixed with the script name;
#   - stdout carries only the machine-readable result (KEY=value lines, quoted with
#     printf %q so `eval "$(scripts/tools/X.sh ...)"` is safe);
#   - caches live under $TACIT_TOOLS_DIR (default /var/tmp/tacit-tools).

TACIT_TOOLS_DIR="${TACIT_TOOLS_DIR:-/var/tmp/tacit-tools}"
export DEBIAN_FRONTEND=noninteractive

_tool_name="$(basename "$0" .sh)"

log() { printf '[%s] %s\n' "$_tool_name" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$_tool_name" "$*" >&2
  exit 1
}
# Print KEY=value on stdout, shell-quoted.
emit() { printf '%s=%q\n' "$1" "$2"; }

ensure_tools_dir() { mkdir -p "$TACIT_TOOLS_DIR" || die "cannot create TACIT_TOOLS_DIR=$TACIT_TOOLS_DIR"; }

# Hold an exclusive lock on $TACIT_TOOLS_DIR/NAME.lock for the rest of the script
# (concurrent callers wait instead of racing on the same cache directory).
take_lock() {
  ensure_tools_dir
  local fd
  exec {fd}>"$TACIT_TOOLS_DIR/$1.lock"
  flock -w 1800 "$fd" || die "timed out waiting for lock $TACIT_TOOLS_DIR/$1.lock"
}

is_root() { [ "$(id -u)" -eq 0 ]; }

deb_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# apt_install PKG...: installs the missing ones; runs `apt-get update` only if the
# first attempt fails (fresh machines have empty package lists).
apt_install() {
  local missing=() p
  for p in "$@"; do deb_installed "$p" || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  is_root || die "need root to install Debian packages: ${missing[*]} (apt-get install -y ${missing[*]})"
  log "apt-get install ${missing[*]}"
  local out
  out="$(mktemp)"
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$out" 2>&1; then
    log "apt-get update"
    apt-get update -q >"$out" 2>&1 || { tail -n 20 "$out" >&2; rm -f "$out"; die "apt-get update failed"; }
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$out" 2>&1; then
      tail -n 20 "$out" >&2
      rm -f "$out"
      die "apt-get install ${missing[*]} failed"
    fi
  fi
  rm -f "$out"
}

hash_text() { sha256sum | cut -d' ' -f1; }

# ensure_venv DIR PKG...: a venv at DIR holding PKG... ; a stamp file holding the hash
# of the package list (and interpreter) makes a repeated call a no-op.
ensure_venv() {
  local dir="$1"
  shift
  local py="${TACIT_PYTHON:-python3}"
  command -v "$py" >/dev/null 2>&1 || { apt_install python3 python3-venv; py=python3; }
  local pyid want stamp="$dir/.tacit-stamp"
  pyid="$("$py" -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])')" ||
    die "$py does not run"
  want="$(printf '%s\n' "$@" | hash_text)"
  if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] &&
    [ "$(cat "$stamp")" = "$(printf '%s\n%s' "$pyid" "$want")" ] &&
    "$dir/bin/python" -c 'pass' 2>/dev/null; then
    log "venv $dir up to date"
    return 0
  fi
  # A venv from another interpreter (or a broken one) is rebuilt from scratch.
  if ! [ -f "$stamp" ] || [ "$(head -n1 "$stamp")" != "$pyid" ] ||
    ! "$dir/bin/python" -c 'import pip' 2>/dev/null; then
    log "creating venv $dir ($pyid)"
    rm -rf "$dir"
    if ! "$py" -m venv "$dir" >&2; then
      # Debian's system python needs python3-venv for ensurepip.
      apt_install python3-venv
      rm -rf "$dir"
      "$py" -m venv "$dir" >&2 || die "python -m venv $dir failed"
    fi
  fi
  rm -f "$stamp"
  log "pip install $*"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" >&2 ||
    die "pip install $* failed (is PyPI reachable?)"
  printf '%s\n%s\n' "$pyid" "$want" >"$stamp"
}

# port_busy PORT: true if something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port START: first port >= START that nobody listens on.
free_port() {
  local p="$1"
  while port_busy "$p"; do
    p=$((p + 1))
    [ "$p" -lt $(($1 + 200)) ] || die "no free port in $1..$p"
  done
  echo "$p"
}

# The host's Debian mirror (for debootstrap): first "deb" source of suite
# $VERSION_CODENAME with "main"; override with TACIT_DEBIAN_MIRROR.
debian_mirror() {
  if [ -n "${TACIT_DEBIAN_MIRROR:-}" ]; then
    echo "$TACIT_DEBIAN_MIRROR"
    return
  fi
  local cn f
  cn="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sources)
        awk -v cn="$cn" '
          BEGIN { RS = ""; FS = "\n" }
          {
            t = u = s = c = ""; en = "yes"
            for (i = 1; i <= NF; i++) {
              l = $i
              if (l ~ /^[ \t]*#/ || l !~ /^[A-Za-z-]+:/) continue
              k = tolower(l); sub(/:.*/, "", k); v = l; sub(/^[^:]*:[ \t]*/, "", v)
              if (k == "types") t = v; else if (k == "uris") u = v
              else if (k == "suites") s = v; else if (k == "components") c = v
              else if (k == "enabled") en = tolower(v)
            }
            if (en != "no" && (" " t " ") ~ / deb / && (" " s " ") ~ (" " cn " ") && (" " c " ") ~ / main /) {
              split(u, us, /[ \t]+/); print us[1]
            }
          }' "$f"
        ;;
      *)
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
          awk -v cn="$cn" '$1 == "deb" && $3 == cn { for (i = 4; i <= NF; i++) if ($i == "main") { print $2; break } }'
        ;;
    esac
  done | head -n1 | grep . || die "no Debian mirror for '$cn' found in /etc/apt/sources.list*; set TACIT_DEBIAN_MIRROR"
}

# Unmount everything at or below $1 (deepest first).
umount_below() {
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
}

remove_tree() {
  [ -e "$1" ] || return 0
  umount_below "$1"
  rm -rf --one-file-system "$1"
}

# Starts `BIN serve` on embedded storage under WORK with admin token TOKEN on a free
# loopback port (keys made first, log in WORK/server.log) and waits until it is ready.
# Sets `gateway_url` and `gateway_pid`; the caller stops it.
start_embedded_gateway() {
  local bin="$1" work="$2" token="$3" port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  TACIT_DATA_DIR="$work/data" "$bin" keygen >/dev/null
  TACIT_DATA_DIR="$work/data" TACIT_LISTEN="127.0.0.1:$port" TACIT_ADMIN_TOKEN="$token" \
    TACIT_LOG=warn "$bin" serve >"$work/server.log" 2>&1 &
  gateway_pid=$!
  gateway_url="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -fsS "$gateway_url/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "the gateway did not become ready (log: $work/server.log)"
}
