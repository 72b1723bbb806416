#!/usr/bin/env bash
# Authentication benchmark: `POST /v1/authenticate` throughput and latency of
# the gateway with the gait factor (a) in-process (`serve --role all`), (b) over HTTP to
# Tacit's factor service, (c) over HTTP to the FastAPI + PyTorch peer serving the same
# model (bench/python-peer/). Same gateway, same users and templates, same load
# generator; every request is a fresh device-signed request that scores the user's 8
# newest gait windows (read back from the stored envelopes). BENCHMARKS.md quotes it.
#
# Usage: scripts/bench-auth.sh             (a few minutes once built)
# Environment: BENCH_DURATION (measured seconds per run, default 6), BENCH_WARMUP (2),
#   BENCH_CONCURRENCY ("8 32"), BENCH_USERS (600; two requests of one device must not overtake each other), BENCH_OUT,
#   BENCH_SERVER (another build of tacit-backend to measure, e.g. an earlier commit's;
#   default the one built here), BENCH_PHASES ("in-process tacit peer").
# Needs what scripts/bench-serve.sh needs (python3-torch for the peer).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=scripts/tools/lib.sh
. scripts/tools/lib.sh

duration=${BENCH_DURATION:-6}
warmup=${BENCH_WARMUP:-2}
concurrency=${BENCH_CONCURRENCY:-"8 32"}
users=${BENCH_USERS:-600}
out=${BENCH_OUT:-$(mktemp -d /tmp/tacit-bench-auth.XXXXXX)}
mkdir -p "$out"
target=${CARGO_TARGET_DIR:-$root/target}
admin=bench-admin

log "building release binaries"
cargo build -q --release --locked -p tacit-backend --bin tacit-backend \
  --example loadgen --example bench_fixture --example auth_fixture
bin=${BENCH_SERVER:-$target/release/tacit-backend}
phases=${BENCH_PHASES:-"in-process tacit peer"}
py="$(bash bench/python-peer/venv.sh | tail -n 1)"
"$target/release/examples/bench_fixture" --out "$out" >/dev/null
"$bin" model-export --model "$out/model.tcm" --out "$out/model.json"

pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
wait_url() {
  for _ in $(seq 300); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.1
  done
  die "not ready: $1 (logs in $out)"
}

factor_port=$(free_port 18800)
mkdir -p "$out/factor-data"
TACIT_DATA_DIR="$out/factor-data" "$bin" keygen >/dev/null # the at-rest key and the token a factor service needs
TACIT_MODEL_URL="file://$out/model.tcm" TACIT_LISTEN="127.0.0.1:$factor_port" \
  TACIT_DATA_DIR="$out/factor-data" TACIT_LOG=warn "$bin" serve --role factor:gait \
  >"$out/factor.log" 2>&1 &
pids+=($!)
peer_port=$(free_port $((factor_port + 1)))
PEER_MODEL="$out/model.json" PEER_TORCH_THREADS=1 OMP_NUM_THREADS=1 \
  "$py" -m uvicorn --app-dir bench/python-peer --factory tacit_peer:app_from_env \
  --host 127.0.0.1 --port "$peer_port" --workers "$(nproc)" --log-level warning \
  >"$out/peer.log" 2>&1 &
pids+=($!)
wait_url "http://127.0.0.1:$factor_port/v2/health/ready"
wait_url "http://127.0.0.1:$peer_port/v2/health/ready"

gw="$out/gateway"
mkdir -p "$gw/objects/models"
TACIT_DATA_DIR="$gw" "$bin" keygen >/dev/null
cp "$out/model.tcm" "$gw/objects/models/gait.tcm"
gw_port=$(free_port $((peer_port + 1)))
gw_pid=""
start_gateway() { # ROLE [FACTOR_URLS]
  TACIT_DATA_DIR="$gw" TACIT_LISTEN="127.0.0.1:$gw_port" TACIT_ADMIN_TOKEN=$admin \
    TACIT_FACTOR_URLS="${2:-}" TACIT_FACTOR_TOKEN_FILE="$out/factor-data/keys/factor.token" \
    TACIT_LOG=warn "$bin" serve --role "$1" >>"$out/gateway.log" 2>&1 &
  gw_pid=$!
  pids+=("$gw_pid")
  wait_url "http://127.0.0.1:$gw_port/readyz"
}
stop_gateway() {
  kill "$gw_pid" && wait "$gw_pid" 2>/dev/null || true
}
fixture() { # extra args
  "$target/release/examples/auth_fixture" --url "http://127.0.0.1:$gw_port" --admin-token $admin \
    --keys-dir "$gw/keys" --users "$users" --rows 8 --requests 60000 --out "$out/auth.jsonl" "$@"
}

results="$out/results.jsonl"
: >"$results"
run_phase() { # NAME
  for c in $concurrency; do
    fixture --bodies-only 2>/dev/null
    r=$("$target/release/examples/loadgen" --url "http://127.0.0.1:$gw_port/v1/authenticate" \
      --bodies "$out/auth.jsonl" --concurrency "$c" --duration "${duration}s" \
      --warmup "${warmup}s" --label "$1 c=$c")
    echo "$r" | "$py" -c 'import json, sys; r = json.load(sys.stdin); r["factor"] = sys.argv[1]; print(json.dumps(r))' "$1" >>"$results"
    log "$1 c=$c done"
  done
}

log "users, devices, enrolment (in-process factor)"
start_gateway all
fixture
run_phase "in-process"
stop_gateway
if [[ " $phases " == *" tacit "* ]]; then
  start_gateway gateway "gait=http://127.0.0.1:$factor_port"
  run_phase "HTTP, Tacit factor"
  stop_gateway
fi
if [[ " $phases " == *" peer "* ]]; then
  start_gateway gateway "gait=http://127.0.0.1:$peer_port"
  run_phase "HTTP, Python peer"
  stop_gateway
fi

"$py" - "$results" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
print("\n| gait factor | conc. | req/s | p50 ms | p99 ms | errors | in-process req/s ÷ this | this p99 ÷ in-process p99 |")
print("|---|---|---|---|---|---|---|---|")
base = {r["concurrency"]: r for r in rs if r["factor"] == "in-process"}
for r in rs:
    b, lat = base[r["concurrency"]], r["latency_ms"]
    ratio = p99 = ""
    if r["factor"] != "in-process":
        ratio = "%.1f×" % (b["req_per_s"] / r["req_per_s"])
        p99 = "%.1f×" % (lat["p99"] / b["latency_ms"]["p99"])
    print("| %s | %d | %s | %.2f | %.2f | %d | %s | %s |" % (r["factor"], r["concurrency"],
          f"{r['req_per_s']:,.0f}", lat["p50"], lat["p99"], r["errors"], ratio, p99))
if any(r["errors"] for r in rs):
    sys.exit("errors during the runs: see " + sys.argv[1])
PY
