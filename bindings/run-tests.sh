#!/usr/bin/env bash
# Runs the same end-to-end scenario against tacit-test-server in Python, Kotlin (JVM,
# JNA) and Swift (Linux, in the trixie chroot of scripts/tools/swift.sh):
# create a client -> register -> record motion and keys -> seal -> upload -> status,
# plus the error cases. Each language prints one line "N passed, N failed"; this script
# prints the total as its last line and exits non-zero if anything failed.
#
# Usage: bindings/run-tests.sh [--release] [--languages python,kotlin,swift] [--keep]
#   --release     build the library in release mode (default: debug)
#   --languages   comma-separated subset (default: all three)
#   --keep        keep the temporary directory (logs, data dirs, compiled tests)
# Needs: cargo, python3, a JDK (scripts/tools/kotlin.sh installs kotlinc and JNA),
# root for Swift (scripts/tools/swift.sh; skipped with a message otherwise).
# Honours CARGO_TARGET_DIR and TACIT_TOOLS_DIR.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

gen_args=()
languages="python,kotlin,swift"
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --release) gen_args+=(--release) ;;
    --languages) [ $# -ge 2 ] || { echo "--languages needs a value" >&2; exit 2; }; languages="$2"; shift ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) echo "[run-tests] ERROR: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[run-tests] $*" >&2; }

tmp="$(mktemp -d /var/tmp/tacit-bindings.XXXXXX)"
chmod 755 "$tmp"
server_pids=()
cleanup() {
  local pid
  for pid in "${server_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$keep" ]; then
    log "kept $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

gen="$(bash bindings/generate.sh "${gen_args[@]}" | tail -n 1)"

log "building tacit-test-server"
cargo build --locked -q -p tacit-test-server >&2
server_bin="${CARGO_TARGET_DIR:-$root/target}/debug/tacit-test-server"

# start_server NAME: starts a server for user-NAME with tokens NAME-1 and NAME-2 and
# exports the TACIT_* variables the language tests read.
start_server() {
  local name="$1" dir="$tmp/$1" line="" i
  mkdir -p "$dir"
  "$server_bin" --ignore-stdin --user "user-$name" \
    --token "$name-1" --token "$name-2" \
    >"$dir/server.json" 2>"$dir/server.log" &
  server_pids+=("$!")
  for i in $(seq 100); do
    line="$(head -n 1 "$dir/server.json" 2>/dev/null || true)"
    [ -n "$line" ] && break
    [ "$i" = 100 ] && { log "ERROR: server for $name did not start"; cat "$dir/server.log" >&2; return 1; }
    sleep 0.1
  done
  TACIT_URL="$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' <<<"$line")"
  TACIT_PUBLIC_KEY="$(sed -n 's/.*"public_key":"\([^"]*\)".*/\1/p' <<<"$line")"
  TACIT_KEY_ID="$(sed -n 's/.*"key_id":"\([^"]*\)".*/\1/p' <<<"$line")"
  TACIT_USER="user-$name"
  TACIT_TOKEN="$name-1"
  TACIT_TOKEN2="$name-2"
  export TACIT_URL TACIT_PUBLIC_KEY TACIT_KEY_ID TACIT_USER TACIT_TOKEN TACIT_TOKEN2
  log "$name: server at $TACIT_URL (log: $dir/server.log)"
}

# Environment of a language test, as `env` arguments (Swift runs with a clean one).
test_env() {
  local data="$1"
  printf '%s\n' "TACIT_URL=$TACIT_URL" "TACIT_PUBLIC_KEY=$TACIT_PUBLIC_KEY" \
    "TACIT_KEY_ID=$TACIT_KEY_ID" "TACIT_USER=$TACIT_USER" "TACIT_TOKEN=$TACIT_TOKEN" \
    "TACIT_TOKEN2=$TACIT_TOKEN2" "TACIT_DATA_DIR=$data"
}

run_python() {
  local dir="$tmp/python" py envs
  start_server python || return 1
  py="$(bash scripts/tools/python-venv.sh | tail -n 1)"
  cp -r "$gen/python" "$dir/lib"
  cp bindings/tests/python/*.py "$dir/lib/"
  mapfile -t envs < <(test_env "$dir/data")
  env "${envs[@]}" PYTHONDONTWRITEBYTECODE=1 "$py" "$dir/lib/test_bindings.py"
}

run_kotlin() {
  local dir="$tmp/kotlin" KOTLINC KOTLIN_STDLIB KOTLINX_COROUTINES JNA_JAR cp envs
  start_server kotlin || return 1
  eval "$(bash scripts/tools/kotlin.sh)"
  cp="$JNA_JAR:$KOTLINX_COROUTINES"
  log "kotlin: compiling (about 30 s)"
  "$KOTLINC" -nowarn -d "$dir/classes" -cp "$cp" \
    "$(find "$gen/kotlin" -name '*.kt')" bindings/tests/kotlin/*.kt >&2 || return 1
  mapfile -t envs < <(test_env "$dir/data")
  env "${envs[@]}" java -Djna.library.path="$gen/kotlin" \
    -cp "$dir/classes:$KOTLIN_STDLIB:$cp" tacit.bindings.test.MainKt
}

run_swift() {
  local dir="$tmp/swift" rc=0 modulemap module envs
  start_server swift || return 1
  bash scripts/tools/swift.sh ensure >/dev/null || rc=$?
  if [ "$rc" = 3 ]; then
    echo "SKIP: swift needs root to build and enter its chroot" >&2
    return 3
  elif [ "$rc" != 0 ]; then
    return "$rc"
  fi
  mkdir -p "$dir"
  cp "$gen/swift/"* "$dir/"
  cp bindings/tests/swift/*.swift "$dir/"
  # The uniffi namespace names the files: NS.swift, NSFFI.h, NSFFI.modulemap.
  modulemap="$(cd "$dir" && ls -- *FFI.modulemap)"
  module="${modulemap%FFI.modulemap}"
  mapfile -t envs < <(test_env /work/data)
  # Inside the chroot DIR is /work; the module map must be named by absolute path.
  bash scripts/tools/swift.sh run "$dir" -- env "${envs[@]}" LD_LIBRARY_PATH=/work \
    swiftc -module-name "$module" -Xcc "-fmodule-map-file=/work/$modulemap" \
    -L /work -ltacit_mobile_core -o /work/tacit_test "/work/$module.swift" /work/main.swift 1>&2 ||
    return 1
  bash scripts/tools/swift.sh run "$dir" -- env "${envs[@]}" LD_LIBRARY_PATH=/work /work/tacit_test
}

total_pass=0
total_fail=0
IFS=',' read -r -a langs <<<"$languages"
for lang in "${langs[@]}"; do
  case "$lang" in
    python | kotlin | swift) ;;
    *) log "ERROR: unknown language $lang"; exit 2 ;;
  esac
  log "=== $lang ==="
  out="$tmp/$lang.out"
  rc=0
  # (set -e does not apply inside a function run in a `||` list: the steps return
  # explicitly on failure.)
  "run_$lang" >"$out" || rc=$?
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)"
  if [ "$lang" = swift ] && [ "$rc" = 3 ] && [ -z "$summary" ]; then
    echo "$lang: SKIPPED (not root)"
    continue
  fi
  if [ -z "$summary" ]; then
    echo "$lang: no result (exit $rc); counted as 1 failure"
    total_fail=$((total_fail + 1))
    continue
  fi
  p="${summary%% passed*}"
  f="${summary#*, }"
  f="${f%% failed}"
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    f=1
  fi
  echo "$lang: $summary"
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
