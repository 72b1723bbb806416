#!/usr/bin/env bash
# Runs the same end-to-end scenario against the real gateway (tacit-backend, one per
# language, embedded SQLite in a temporary data dir) in Python, Kotlin (JVM, JNA) and
# Swift (Linux, in the trixie chroot of scripts/tools/swift.sh):
# create a client -> register -> record motion and keys -> seal -> upload -> status,
# plus the error cases. Step swift-platform compiles the Swift platform layer
# (bindings/apple/Sources/Tacit) with its tests (bindings/tests/swift-platform) and runs
# them, end to end part and quickstart included, against its own gateway. Each step prints
# one line "N passed, N failed"; this script prints the total as its last line and exits
# non-zero if anything failed.
#
# Step python-wheel builds the Python wheel (bindings/python/build-wheel.sh: maturin,
# the phone library's release profile), installs it into a fresh venv and runs the
# Python quickstart (bindings/tests/python/quickstart.py) with it against a gateway.
#
# Usage: bindings/run-tests.sh [--release] [--languages python,python-wheel,kotlin,swift,swift-platform] [--keep]
#   --release     build the library in release mode (default: debug)
#   --languages   comma-separated subset (default: all of them)
#   --keep        keep the temporary directory (gateway logs and data, compiled tests)
# Needs: cargo, python3 (curl is used when present), a JDK (scripts/tools/kotlin.sh
# installs kotlinc and JNA), root for Swift (scripts/tools/swift.sh; skipped with a
# message otherwise). Nothing else: no database or S3 server (the gateways use SQLite and
# files), and TACIT_* variables of the caller do not reach them.
# Honours CARGO_TARGET_DIR and TACIT_TOOLS_DIR.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

gen_args=()
languages="python,python-wheel,kotlin,swift,swift-platform"
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --release) gen_args+=(--release) ;;
    --languages) [ $# -ge 2 ] || { echo "--languages needs a value" >&2; exit 2; }; languages="$2"; shift ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
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

log "building tacit-backend (the real gateway)"
cargo build --locked -q -p tacit-backend >&2
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
backend_bin="$target_dir/debug/tacit-backend"
[ -x "$backend_bin" ] || { log "ERROR: $backend_bin not found after the build"; exit 1; }

# http TOKEN METHOD URL [JSON]: one request (TOKEN, if not empty, as the admin bearer
# token); prints the body and fails unless the status is 2xx. curl if present, else
# python3.
http() {
  local token="$1" method="$2" url="$3" body="${4:-}" out code
  if command -v curl >/dev/null 2>&1; then
    local args=(-sS --max-time 10 -X "$method" -w '\n%{http_code}')
    [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data "$body")
    out="$(curl "${args[@]}" "$url" 2>&1)" || { echo "${out%$'\n'*}" >&2; return 1; }
    code="${out##*$'\n'}"
    out="${out%$'\n'*}"
    case "$code" in
      2??) printf '%s\n' "$out" ;;
      *) echo "$method $url: HTTP $code $out" >&2; return 1 ;;
    esac
  else
    python3 - "$token" "$method" "$url" "$body" <<'EOF'
import sys, urllib.error, urllib.request
token, method, url, body = sys.argv[1:5]
req = urllib.request.Request(url, method=method, data=body.encode() if body else None)
if token:
    req.add_header("Authorization", "Bearer " + token)
if body:
    req.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.read().decode())
except urllib.error.HTTPError as e:
    sys.exit(f"{method} {url}: HTTP {e.code} {e.read().decode()}")
except OSError as e:
    sys.exit(f"{method} {url}: {e}")
EOF
  fi
}

# json_field NAME: the string value of "NAME" in the one-line JSON object on stdin.
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# backend_env: sets backend_env_args, the `env` arguments that give tacit-backend
# exactly the TACIT_* settings passed after them: inherited ones (a caller's
# TACIT_DATABASE_URL, the TACIT_URL of the previous language, ...) are removed.
backend_env_args=()
backend_env() {
  local v
  backend_env_args=()
  for v in $(compgen -e); do
    case "$v" in TACIT_*) backend_env_args+=(-u "$v") ;; esac
  done
  backend_env_args+=(TACIT_LOG=warn)
}

# start_server NAME: starts a tacit-backend (embedded SQLite and object files in a
# temporary data dir, a fresh HPKE key, a random admin token), creates user-NAME and two
# enrolment tokens, and exports the TACIT_* variables the language tests read.
start_server() {
  local name="$1" dir="$tmp/gateway-$1" keys admin port pid url="" i token
  mkdir -p "$dir/data"
  backend_env
  keys="$(env "${backend_env_args[@]}" TACIT_DATA_DIR="$dir/data" "$backend_bin" keygen)" ||
    { log "ERROR: tacit-backend keygen failed"; return 1; }
  TACIT_KEY_ID="$(sed -n 's/^key_id=//p' <<<"$keys")"
  TACIT_PUBLIC_KEY="$(sed -n 's/^public_key=//p' <<<"$keys")"
  if [ -z "$TACIT_KEY_ID" ] || [ -z "$TACIT_PUBLIC_KEY" ]; then
    log "ERROR: unexpected keygen output: $keys"
    return 1
  fi
  admin="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  # The port is picked, released, then bound by the server: retry if someone took it.
  for _ in 1 2 3 4 5; do
    port="$(free_port)"
    # (env execs the server: $! is the server's pid, which cleanup sends SIGTERM.)
    env "${backend_env_args[@]}" TACIT_DATA_DIR="$dir/data" TACIT_LISTEN="127.0.0.1:$port" \
      TACIT_ADMIN_TOKEN="$admin" "$backend_bin" serve >>"$dir/server.log" 2>&1 &
    pid=$!
    server_pids+=("$pid")
    for i in $(seq 300); do
      if http "" GET "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
        url="http://127.0.0.1:$port"
        break 2
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -qi 'in use' "$dir/server.log" || break
  done
  if [ -z "$url" ]; then
    log "ERROR: tacit-backend for $name did not become ready"
    tail -n 20 "$dir/server.log" >&2
    return 1
  fi
  http "$admin" POST "$url/v1/users" "{\"user_id\": \"user-$name\"}" >/dev/null || return 1
  for i in 1 2; do
    token="$(http "$admin" POST "$url/v1/users/user-$name/enrolment-tokens" | json_field token)"
    [ -n "$token" ] || { log "ERROR: no enrolment token for user-$name"; return 1; }
    if [ "$i" = 1 ]; then TACIT_TOKEN="$token"; else TACIT_TOKEN2="$token"; fi
  done
  TACIT_URL="$url"
  TACIT_USER="user-$name"
  TACIT_TEST_ADMIN_TOKEN="$admin"
  export TACIT_URL TACIT_PUBLIC_KEY TACIT_KEY_ID TACIT_USER TACIT_TOKEN TACIT_TOKEN2 TACIT_TEST_ADMIN_TOKEN
  log "$name: tacit-backend at $TACIT_URL, key $TACIT_KEY_ID (log: $dir/server.log)"
}

# Environment of a language test, as `env` arguments (Swift runs with a clean one).
test_env() {
  local data="$1"
  printf '%s\n' "TACIT_URL=$TACIT_URL" "TACIT_PUBLIC_KEY=$TACIT_PUBLIC_KEY" \
    "TACIT_KEY_ID=$TACIT_KEY_ID" "TACIT_USER=$TACIT_USER" "TACIT_TOKEN=$TACIT_TOKEN" \
    "TACIT_TOKEN2=$TACIT_TOKEN2" "TACIT_DATA_DIR=$data" \
    "TACIT_TEST_ADMIN_TOKEN=$TACIT_TEST_ADMIN_TOKEN"
}

run_python() {
  local dir="$tmp/python" py envs
  start_server python || return 1
  mkdir -p "$dir"
  py="$(bash scripts/tools/python-venv.sh | tail -n 1)"
  cp -r "$gen/python" "$dir/lib"
  cp bindings/tests/python/*.py "$dir/lib/"
  mapfile -t envs < <(test_env "$dir/data")
  env "${envs[@]}" PYTHONDONTWRITEBYTECODE=1 "$py" "$dir/lib/test_bindings.py"
}

# The wheel as a user gets it: built with maturin, installed (nothing else, no index)
# into a fresh venv, imported from there, the quickstart run against a gateway. Checks:
# the wheel builds with the workspace's version, installs, and the quickstart prints a
# decision. Then the whole Python scenario (tests/python) runs on the wheel's library —
# the phone profile with its trimmed SQLite — against a gateway of its own (the tools
# venv's Python for PyJWT, the wheel's package first on the path).
run_python_wheel() {
  local dir="$tmp/python-wheel" wheel envs out p=0 f=0 version
  start_server python-wheel || return 1
  mkdir -p "$dir"
  version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
  if wheel="$(bash bindings/python/build-wheel.sh --out "$dir/dist" | tail -n 1)" &&
    [[ "$(basename "$wheel")" == tacit_sdk-"$version"-* ]]; then
    p=$((p + 1)); log "python-wheel: built $(basename "$wheel")"
  else
    echo "0 passed, 1 failed"; return 1
  fi
  python3 -m venv "$dir/venv" >&2 &&
    "$dir/venv/bin/pip" install -q --no-index --no-deps "$wheel" >&2 &&
    p=$((p + 1)) || { f=$((f + 1)); echo "$p passed, $f failed"; return 1; }
  mapfile -t envs < <(test_env "$dir/data")
  # From another folder, so that `import tacit` can only find the installed wheel.
  if out="$(cd "$dir" && env "${envs[@]}" PYTHONDONTWRITEBYTECODE=1 "$dir/venv/bin/python" \
    "$root/bindings/tests/python/quickstart.py")" && [[ "$out" == "decision: "* ]]; then
    p=$((p + 1)); log "python-wheel: quickstart: $out"
  else
    f=$((f + 1)); log "python-wheel: quickstart failed: $out"
  fi
  local site py counts sp sf rc=0
  site="$(cd "$dir" && "$dir/venv/bin/python" -c 'import os, tacit; print(os.path.dirname(os.path.dirname(tacit.__file__)))')"
  start_server python-wheel-scenario || { echo "$p passed, $((f + 1)) failed"; return 1; }
  py="$(bash scripts/tools/python-venv.sh | tail -n 1)"
  mapfile -t envs < <(test_env "$dir/scenario-data")
  (cd "$dir" && env "${envs[@]}" PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$site:$root/bindings/tests/python" \
    "$py" "$root/bindings/tests/python/test_bindings.py") >"$dir/scenario.out" || rc=$?
  counts="$(summary_counts "$dir/scenario.out")"
  if [ -z "$counts" ]; then
    f=$((f + 1)); log "python-wheel: the scenario on the wheel gave no result (exit $rc)"
  else
    read -r sp sf <<<"$counts"
    if [ "$rc" != 0 ] && [ "$sf" = 0 ]; then sf=1; fi
    p=$((p + sp)) f=$((f + sf))
    log "python-wheel: the scenario on the wheel's library: $sp passed, $sf failed"
  fi
  echo "$p passed, $f failed"
  [ "$f" = 0 ]
}

# summary_counts FILE: "P F" from the last "N passed, N failed" line of FILE, or nothing.
summary_counts() {
  sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$1" 2>/dev/null | tail -n 1
}

# The Kotlin step has two parts, each against its own gateway: the bindings scenario
# (tests/kotlin) and the platform layer (bindings/android/tacit/src/main/kotlin without
# its Android-only adapters in dev/tacit/sdk/android, with tests/kotlin-platform: unit
# tests, the facade end to end, the quickstart). It prints one combined
# "N passed, N failed" line; a part without a summary, or that exited non-zero with no
# failed check, counts as one failure.
run_kotlin() {
  local dir="$tmp/kotlin" KOTLINC KOTLIN_STDLIB KOTLINX_COROUTINES JNA_JAR cp envs
  local part rc counts p f total_p=0 total_f=0 status=0
  start_server kotlin || return 1
  eval "$(bash scripts/tools/kotlin.sh)"
  cp="$JNA_JAR:$KOTLINX_COROUTINES"
  # A private copy of the bindings and library (like python's and swift's): both parts
  # then load the library the classes were compiled from, even if the bindings are
  # regenerated meanwhile.
  mkdir -p "$dir"
  cp -r "$gen/kotlin" "$dir/gen"
  log "kotlin: compiling (about 30 s)"
  "$KOTLINC" -nowarn -d "$dir/classes" -cp "$cp" \
    "$(find "$dir/gen" -name '*.kt')" bindings/tests/kotlin/*.kt >&2 || return 1
  mapfile -t envs < <(test_env "$dir/data")
  rc=0
  env "${envs[@]}" java -Djna.library.path="$dir/gen" \
    -cp "$dir/classes:$KOTLIN_STDLIB:$cp" tacit.bindings.test.MainKt >"$dir/scenario.out" || rc=$?
  echo "$rc" >"$dir/scenario.rc"
  rc=0
  run_kotlin_platform "$dir" "$cp" >"$dir/platform.out" || rc=$?
  echo "$rc" >"$dir/platform.rc"
  for part in scenario platform; do
    rc="$(cat "$dir/$part.rc")"
    counts="$(summary_counts "$dir/$part.out")"
    if [ -z "$counts" ]; then
      log "kotlin $part: no result (exit $rc); counted as 1 failure"
      p=0 f=1
    else
      read -r p f <<<"$counts"
      if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
      log "kotlin $part: $p passed, $f failed"
    fi
    if [ "$part" = platform ] && [ "$f" != 0 ] && [ -s "$tmp/gateway-kotlin-platform/server.log" ]; then
      log "kotlin platform: last lines of its gateway log:"
      tail -n 20 "$tmp/gateway-kotlin-platform/server.log" >&2
    fi
    [ "$rc" = 0 ] && [ "$f" = 0 ] || status=1
    total_p=$((total_p + p))
    total_f=$((total_f + f))
  done
  echo "$total_p passed, $total_f failed"
  return "$status"
}

# run_kotlin_platform DIR CP: compiles the platform layer's pure sources and its tests
# against the bindings compiled into DIR/classes, and runs them against a gateway of
# their own (fresh enrolment tokens). Uses run_kotlin's KOTLINC and KOTLIN_STDLIB.
run_kotlin_platform() {
  local dir="$1" cp="$2" classes="$1/platform-classes" srcs envs
  start_server kotlin-platform || return 1
  mapfile -t srcs < <(find bindings/android/tacit/src/main/kotlin -name '*.kt' \
    -not -path '*/dev/tacit/sdk/android/*' | sort)
  [ "${#srcs[@]}" -gt 0 ] || { log "ERROR: no platform sources found"; return 1; }
  log "kotlin: compiling the platform layer and its tests (about 30 s)"
  "$KOTLINC" -nowarn -d "$classes" -cp "$dir/classes:$cp" \
    "${srcs[@]}" bindings/tests/kotlin-platform/*.kt >&2 || return 1
  mapfile -t envs < <(test_env "$dir/platform-data")
  env "${envs[@]}" java -Djna.library.path="$dir/gen" \
    -cp "$classes:$dir/classes:$KOTLIN_STDLIB:$cp" tacit.platform.test.MainKt
}

# swift_ready: the Swift chroot is there; returns 3 (skipped, said why) without root.
swift_ready() {
  local rc=0
  bash scripts/tools/swift.sh ensure >/dev/null || rc=$?
  if [ "$rc" = 3 ]; then
    echo "SKIP: swift needs root to build and enter its chroot" >&2
  fi
  return "$rc"
}

run_swift() {
  local dir="$tmp/swift" modulemap module envs
  start_server swift || return 1
  swift_ready || return $?
  mkdir -p "$dir"
  cp "$gen/swift/"* "$dir/"
  cp bindings/tests/swift/*.swift bindings/tests/swift/CSodium.modulemap "$dir/"
  # The uniffi namespace names the files: NS.swift, NSFFI.h, NSFFI.modulemap.
  modulemap="$(cd "$dir" && ls -- *FFI.modulemap)"
  module="${modulemap%FFI.modulemap}"
  mapfile -t envs < <(test_env /work/data)
  # Inside the chroot DIR is /work; the module map must be named by absolute path.
  bash scripts/tools/swift.sh run "$dir" -- env "${envs[@]}" LD_LIBRARY_PATH=/work \
    swiftc -module-name "$module" -Xcc "-fmodule-map-file=/work/$modulemap" \
    -Xcc "-fmodule-map-file=/work/CSodium.modulemap" -L /work -ltacit_mobile_core -o /work/tacit_test "/work/$module.swift" /work/main.swift 1>&2 ||
    return 1
  bash scripts/tools/swift.sh run "$dir" -- env "${envs[@]}" LD_LIBRARY_PATH=/work /work/tacit_test
}

# The Swift platform layer (bindings/apple/Sources/Tacit): its pure Swift sources (the
# Apple-only adapters compile to nothing without the Apple SDKs), compiled into ONE module
# with the generated tacit.swift and the tests of bindings/tests/swift-platform (unit
# tests, then the facade end to end and the quickstart against the real gateway).
run_swift_platform() {
  local dir="$tmp/swift-platform" modulemap module envs
  start_server swift-platform || return 1
  swift_ready || return $?
  mkdir -p "$dir/layer" "$dir/test"
  cp "$gen/swift/"* "$dir/"
  cp bindings/apple/Sources/Tacit/*.swift "$dir/layer/"
  cp bindings/tests/swift-platform/*.swift bindings/tests/swift-platform/CSodium.modulemap "$dir/test/"
  modulemap="$(cd "$dir" && ls -- *FFI.modulemap)"
  module="${modulemap%FFI.modulemap}"
  mapfile -t envs < <(test_env /work/data)
  log "swift-platform: compiling (about a minute)"
  # Swift 5 language mode: the generated bindings and the layer target Swift 5.9 (the
  # package's tools version), not Swift 6's strict concurrency checking.
  bash scripts/tools/swift.sh run "$dir" -- env LD_LIBRARY_PATH=/work \
    sh -c 'swiftc -swift-version 5 -module-name "$1" -Xcc "-fmodule-map-file=/work/$2" \
      -Xcc -fmodule-map-file=/work/test/CSodium.modulemap -L /work -ltacit_mobile_core \
      -o /work/tacit_platform_test "/work/$1.swift" /work/layer/*.swift /work/test/*.swift' \
    sh "$module" "$modulemap" 1>&2 || return 1
  bash scripts/tools/swift.sh run "$dir" -- env "${envs[@]}" LD_LIBRARY_PATH=/work /work/tacit_platform_test
}

total_pass=0
total_fail=0
IFS=',' read -r -a langs <<<"$languages"
for lang in "${langs[@]}"; do
  case "$lang" in
    python | python-wheel | kotlin | swift | swift-platform) ;;
    *) log "ERROR: unknown language $lang"; exit 2 ;;
  esac
  log "=== $lang ==="
  out="$tmp/$lang.out"
  rc=0
  # (set -e does not apply inside a function run in a `||` list: the steps return
  # explicitly on failure.)
  "run_${lang//-/_}" >"$out" || rc=$?
  summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)"
  if [[ "$lang" == swift* ]] && [ "$rc" = 3 ] && [ -z "$summary" ]; then
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
  if [ "$f" != 0 ] && [ -s "$tmp/gateway-$lang/server.log" ]; then
    log "$lang: last lines of the gateway log:"
    tail -n 20 "$tmp/gateway-$lang/server.log" >&2
  fi
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]
