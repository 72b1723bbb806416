#!/usr/bin/env bash
# Tests of the Python factor (examples/python-factor):
#   1. unit tests (payload decoder against a payload the Rust crate wrote, model, job store);
#   2. the factor conformance test (scripts/factor_conformance.py, an off-the-shelf OIP v2
#      client: tritonclient[http]) against the service on a free loopback port;
#   3. service tests: restarts of the job store (kill -9 / SIGTERM with a job running),
#      result expiry, hot reload under load, no model, limits, Rust-written feature files.
# Each part prints "N passed, M failed"; the last line is the total, and the exit status
# is non-zero if anything failed. Needs python3 >= 3.11 and PyPI (first run only): the
# packages go into the repository's venv (scripts/tools/python-venv.sh, which reads
# requirements.txt). Honours TACIT_TOOLS_DIR. --keep keeps the temporary directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
keep=""
[ "${1:-}" = "--keep" ] && keep=1

log() { echo "[python-factor] $*" >&2; }

py="$(bash "$root/scripts/tools/python-venv.sh" | tail -n 1)"
[ -x "$py" ] || { log "ERROR: no venv python ($py)"; exit 1; }

tmp="$(mktemp -d /var/tmp/tacit-pyfactor.XXXXXX)"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  stop_server
  if [ -n "$keep" ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# The factor token every call of the tests carries (mode 0600, as the service requires).
token_file="$tmp/factor.token"
(umask 077 && "$py" -c 'import secrets; print(secrets.token_hex(32))' >"$token_file")

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_server: the factor on a free loopback port (retried if the port was taken
# between picking and binding); sets url and server_pid.
url=""
start_server() {
  local port
  mkdir -p "$tmp/objects" "$tmp/jobs"
  for _ in 1 2 3 4 5; do
    port="$(free_port)"
    # FACTOR_BUCKET: the objects directory stands for that bucket (as a bucket mounted
    # with mountpoint-s3 would), so the jobs may name files s3://tacit-conformance/KEY.
    (cd "$here" && exec env FACTOR_OBJECTS_DIR="$tmp/objects" FACTOR_JOB_DIR="$tmp/jobs" \
      FACTOR_BUCKET=tacit-conformance FACTOR_REGISTRY_DIR="$tmp/registry" \
      TACIT_FACTOR_TOKEN_FILE="$token_file" \
      PYTHONDONTWRITEBYTECODE=1 "$py" -m pyfactor --port "$port" --log-level warning) \
      >>"$tmp/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do
      if "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$port/v2/health/ready" 2>/dev/null; then
        url="http://127.0.0.1:$port"
        log "factor at $url (log: $tmp/server.log)"
        return 0
      fi
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
    grep -qi 'address already in use' "$tmp/server.log" || break
  done
  log "ERROR: the factor did not become ready"
  tail -n 30 "$tmp/server.log" >&2
  return 1
}

total_pass=0
total_fail=0
# run_part NAME CMD...: runs CMD, reads its "N passed, M failed" line.
run_part() {
  local name="$1" rc=0 summary p f
  shift
  log "=== $name ==="
  "$@" >"$tmp/$name.out" || rc=$?
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$tmp/$name.out" | tail -n 1 || true)"
  if [ -z "$summary" ]; then
    echo "$name: no result (exit $rc); counted as 1 failure"
    total_fail=$((total_fail + 1))
    return 0
  fi
  p="${summary%% passed*}"
  f="${summary#*, }"
  f="${f%% failed*}"
  [ "$rc" != 0 ] && [ "$f" = 0 ] && f=1
  echo "$name: $summary"
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
}

export PYTHONDONTWRITEBYTECODE=1
run_part unit "$py" "$here/tests/run_unit.py"

if start_server; then
  run_part conformance "$py" "$root/scripts/factor_conformance.py" "$url" py-keystroke \
    --objects-dir "$tmp/objects" --bucket tacit-conformance --factor keystroke-fixed --expect-separation \
    --token-file "$token_file"
else
  echo "conformance: the factor did not start; counted as 1 failure"
  total_fail=$((total_fail + 1))
fi
stop_server

run_part service "$py" "$here/tests/service_test.py"

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
