#!/usr/bin/env bash
# S3-compatible server for tests: moto_server (PyPI moto[server]) from its own venv at
# $TACIT_TOOLS_DIR/s3-venv. moto does NOT check credentials or signatures; clients must use
# path-style addressing. It creates no buckets.
# Usage:
#   scripts/tools/s3.sh start DIR [PORT]   start in the background (pid in DIR/moto.pid, log
#                                          DIR/moto.log, port DIR/port), wait until it answers
#                                          HTTP, print (eval-able):
#       S3_ENDPOINT=http://127.0.0.1:PORT
#       AWS_ACCESS_KEY_ID=test
#       AWS_SECRET_ACCESS_KEY=test
#       AWS_REGION=us-east-1
#   scripts/tools/s3.sh stop DIR
# Default port 55500, or the next free one if busy; an explicit PORT that is busy is an
# error. `start` on a running server prints the same lines again; `stop` is a no-op when
# it is not running.
set -euo pipefail

PACKAGES=(
  "moto[server]==5.2.5"
)
DEFAULT_PORT=55500

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
  sed -n '5,13p' "$0" >&2
  exit 2
}

VENV="$TACIT_TOOLS_DIR/s3-venv"

# our_pid: the pid from DIR/moto.pid if that process is alive and is moto_server.
our_pid() {
  local pid
  [ -f "$DIR/moto.pid" ] || return 1
  pid="$(cat "$DIR/moto.pid")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q moto_server &&
    echo "$pid"
}

answers_http() {
  # shellcheck disable=SC2016 # $1 expands in the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 &&
    head -c 5 <&3 | grep -q "^HTTP/"' sh "$1" 2>/dev/null
}

emit_env() {
  emit S3_ENDPOINT "http://127.0.0.1:$1"
  emit AWS_ACCESS_KEY_ID test
  emit AWS_SECRET_ACCESS_KEY test
  emit AWS_REGION us-east-1
}

start() {
  local pid port
  if pid="$(our_pid)"; then
    port="$(cat "$DIR/port")"
    answers_http "$port" || die "moto_server (pid $pid) runs but does not answer on port $port (log: $DIR/moto.log)"
    log "already running (pid $pid, port $port)"
    emit_env "$port"
    return 0
  fi
  (
    take_lock s3-venv
    ensure_venv "$VENV" "${PACKAGES[@]}"
  )
  [ -x "$VENV/bin/moto_server" ] || die "$VENV/bin/moto_server missing"
  local tries=0
  while :; do
    if [ -n "$WANT_PORT" ]; then
      port="$WANT_PORT"
      ! port_busy "$port" || die "port $port is busy"
    else
      port="$(free_port "${port:-$DEFAULT_PORT}")"
    fi
    log "starting moto_server on 127.0.0.1:$port"
    # New session, stdio detached: the caller's $(...) does not wait for it, and a Ctrl-C
    # in the caller's terminal does not reach it.
    setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$DIR/moto.log" 2>&1 &
    pid=$!
    echo "$pid" >"$DIR/moto.pid"
    echo "$port" >"$DIR/port"
    local _
    for _ in $(seq 1 150); do
      answers_http "$port" && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null && answers_http "$port"; then
      break
    fi
    kill "$pid" 2>/dev/null || true
    rm -f "$DIR/moto.pid"
    tries=$((tries + 1))
    if [ -n "$WANT_PORT" ] || [ "$tries" -ge 5 ] || ! grep -q 'already in use' "$DIR/moto.log"; then
      tail -n 20 "$DIR/moto.log" >&2
      die "moto_server did not come up on port $port (log: $DIR/moto.log)"
    fi
    port=$((port + 1)) # lost a race for the port: try the next one
  done
  log "ready (pid $pid)"
  emit_env "$port"
}

stop() {
  local pid _
  if ! pid="$(our_pid)"; then
    rm -f "$DIR/moto.pid"
    log "not running"
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "moto_server (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/moto.pid"
  log "stopped"
}

[ "$#" -ge 2 ] || usage
cmd="$1"
DIR="$(mkdir -p "$2" && cd "$2" && pwd -P)" || die "cannot create $2"
WANT_PORT="${3:-}"
case "$WANT_PORT" in "" | [0-9]*) ;; *) die "PORT must be a number: $WANT_PORT" ;; esac
case "$cmd" in
  start) start ;;
  stop)
    [ "$#" -eq 2 ] || usage
    stop
    ;;
  *) usage ;;
esac
