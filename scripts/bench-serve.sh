#!/usr/bin/env bash
# Serving benchmark: Tacit's factor service (`serve --role factor:gait`) vs the
# same model served by a FastAPI + PyTorch peer (bench/python-peer/), same requests, same
# load generator (backend/examples/loadgen.rs). BENCHMARKS.md quotes its output.
# The peer runs twice: as `uvicorn --workers $(nproc)` (the usual deployment) and as
# `serve_reuseport.py` (one uvicorn per core on an SO_REUSEPORT socket each: connections
# spread evenly, the peer's best case).
#
# Usage: scripts/bench-serve.sh            (about 5 minutes once built)
# Environment: BENCH_DURATION (measured seconds per run, default 6), BENCH_WARMUP (2),
#   BENCH_CONCURRENCY ("8 32"), BENCH_FORMATS ("json binary": the tensors as JSON
#   numbers, and as binary data after a JSON header, Triton's extension), TACIT_GAIT_DATA (gait folder; default
#   ../shared/data/gait/hoang-nexusone, the synthetic population when absent),
#   BENCH_OUT (results folder, default a new temp folder).
# Needs Debian's python3-torch (bench/python-peer/venv.sh installs it as root) and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=scripts/tools/lib.sh
. scripts/tools/lib.sh

duration=${BENCH_DURATION:-6}
warmup=${BENCH_WARMUP:-2}
concurrency=${BENCH_CONCURRENCY:-"8 32"}
formats=${BENCH_FORMATS:-"json binary"}
data=${TACIT_GAIT_DATA:-"$root/../shared/data/gait/hoang-nexusone"}
out=${BENCH_OUT:-$(mktemp -d /tmp/tacit-bench-serve.XXXXXX)}
mkdir -p "$out"
target=${CARGO_TARGET_DIR:-$root/target}

log "building release binaries"
cargo build -q --release --locked -p tacit-backend --bin tacit-backend --example loadgen --example bench_fixture
bin="$target/release/tacit-backend"
loadgen="$target/release/examples/loadgen"
py="$(bash bench/python-peer/venv.sh | tail -n 1)"

if [ -f "$data/manifest.csv" ]; then
  "$target/release/examples/bench_fixture" --out "$out" --data "$data"
else
  log "no gait data at $data: synthetic population"
  "$target/release/examples/bench_fixture" --out "$out"
fi
"$bin" model-export --model "$out/model.tcm" --out "$out/model.json"

ours_port=$(free_port 18700)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
mkdir -p "$out/ours-data"
TACIT_DATA_DIR="$out/ours-data" "$bin" keygen >/dev/null # the at-rest key a factor service needs
# The load generator sends no token, like the peer it is compared with: factor
# authentication (one SHA-256 per request) is off for this comparison.
TACIT_MODEL_URL="file://$out/model.tcm" TACIT_LISTEN="127.0.0.1:$ours_port" \
  TACIT_FACTOR_AUTH=off TACIT_DATA_DIR="$out/ours-data" TACIT_LOG=warn "$bin" serve --role factor:gait \
  >"$out/ours.log" 2>&1 &
ours_pid=$!
pids+=("$ours_pid")
peer_port=$(free_port $((ours_port + 1)))
# One uvicorn worker per core, one torch thread per worker (bench/python-peer/README.md).
PEER_MODEL="$out/model.json" PEER_TORCH_THREADS=1 OMP_NUM_THREADS=1 \
  "$py" -m uvicorn --app-dir bench/python-peer --factory tacit_peer:app_from_env \
  --host 127.0.0.1 --port "$peer_port" --workers "$(nproc)" --log-level warning \
  >"$out/peer.log" 2>&1 &
peer_pid=$!
pids+=("$peer_pid")
rp_port=$(free_port $((peer_port + 1)))
PEER_MODEL="$out/model.json" PEER_TORCH_THREADS=1 OMP_NUM_THREADS=1 \
  "$py" bench/python-peer/serve_reuseport.py --host 127.0.0.1 --port "$rp_port" \
  --workers "$(nproc)" >"$out/peer-reuseport.log" 2>&1 &
rp_pid=$!
pids+=("$rp_pid")
for port in "$ours_port" "$peer_port" "$rp_port"; do
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null || die "service on port $port not ready (logs in $out)"
done

log "equivalence: the same requests to Tacit and the peer"
"$py" bench/python-peer/equivalence.py --ours "http://127.0.0.1:$ours_port" \
  --peer "http://127.0.0.1:$peer_port" --bodies "$out/infer-8.jsonl" --bodies "$out/infer-1.jsonl" \
  --bodies "$out/infer-8-binary.jsonl" --bodies "$out/infer-1-binary.jsonl" |
  tee "$out/equivalence.json"
"$py" bench/python-peer/equivalence.py --ours "http://127.0.0.1:$ours_port" --limit 20 \
  --peer "http://127.0.0.1:$rp_port" --bodies "$out/infer-8.jsonl" >/dev/null

# "A B": CPU seconds (user + system) of a process and all its descendants, and of the
# whole machine (to see what other processes took during a run).
cpu_snapshot() {
  "$py" - "$1" <<'PY'
import os, sys
stats = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            s = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        f = s[s.rfind(")") + 2:].split()
        stats[int(d)] = (int(f[1]), int(f[11]) + int(f[12]))
want, total, grew = {int(sys.argv[1])}, 0, True
while grew:
    new = {p for p, (pp, _) in stats.items() if pp in want} - want
    grew = bool(new)
    want |= new
hz = os.sysconf("SC_CLK_TCK")
cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
busy = sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait
print(sum(stats[p][1] for p in want if p in stats) / hz, busy / hz)
PY
}

results="$out/results.jsonl"
: >"$results"
for format in $formats; do
  case $format in
    json) suffix="" lines=body ;;
    binary) suffix="-binary" lines=request ;;
    *) die "BENCH_FORMATS: json and/or binary, not $format" ;;
  esac
  for rows in 8 1; do
    for c in $concurrency; do
      for who in ours peer peer-reuseport; do
        case $who in
          ours) port=$ours_port pid=$ours_pid ;;
          peer) port=$peer_port pid=$peer_pid ;;
          *) port=$rp_port pid=$rp_pid ;;
        esac
        before=$(cpu_snapshot "$pid")
        t0=$(date +%s.%N)
        r=$("$loadgen" --url "http://127.0.0.1:$port/v2/models/gait/infer" \
          --bodies "$out/infer-$rows$suffix.jsonl" --lines "$lines" --cycle --concurrency "$c" \
          --duration "${duration}s" --warmup "${warmup}s" --label "$who rows=$rows c=$c $format")
        t1=$(date +%s.%N)
        after=$(cpu_snapshot "$pid")
        echo "$r" | "$py" -c 'import json, sys
r = json.load(sys.stdin)
(s0, m0), (s1, m1) = [map(float, a.split()) for a in sys.argv[3:5]]
wall = float(sys.argv[6]) - float(sys.argv[5])
r.update(server=sys.argv[1], rows=int(sys.argv[2]), format=sys.argv[7], wall_s=wall, server_cpu_s=s1 - s0,
         other_cores=max(0.0, (m1 - m0) - (s1 - s0) - r["client_cpu_s"]) / wall)
print(json.dumps(r))' "$who" "$rows" "$before" "$after" "$t0" "$t1" "$format" >>"$results"
        log "$who rows=$rows c=$c $format done"
      done
    done
  done
done

"$py" - "$results" "$out" <<'PY'
import json, os, platform, sys
import fastapi, numpy, torch, uvicorn
rs = [json.loads(l) for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"\nmachine: {os.cpu_count()} cores ({cpu}); peer: torch {torch.__version__}, "
      f"fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, numpy {numpy.__version__}, "
      f"python {platform.python_version()}")
names = {"ours": "Tacit", "peer": "peer, uvicorn --workers", "peer-reuseport": "peer, SO_REUSEPORT"}
print("| request | conc. | server | req/s | p50 ms | p99 ms | server CPU µs/req "
      "| Tacit req/s ÷ this | this p99 ÷ Tacit p99 | other load (cores) |")
print("|---|---|---|---|---|---|---|---|---|---|")
by = {(r["server"], r["rows"], r["concurrency"], r.get("format", "json")): r for r in rs}
for (who, rows, c, fmt), r in by.items():
    o = by[("ours", rows, c, fmt)]
    lat = r["latency_ms"]
    cpu_us = 1e6 * r["server_cpu_s"] / max(r["completed_total"], 1)
    ratio = "" if who == "ours" else f"**{o['req_per_s'] / r['req_per_s']:.1f}×**"
    p99 = "" if who == "ours" else f"{lat['p99'] / o['latency_ms']['p99']:.1f}×"
    print(f"| template + {rows} row{'s' if rows > 1 else ''}, {fmt} | {c} | {names[who]} | {r['req_per_s']:,.0f} | "
          f"{lat['p50']:.2f} | {lat['p99']:.2f} | {cpu_us:.0f} | {ratio} | {p99} | {r['other_cores']:.2f} |"
          + (f" ERRORS {r['errors']}" if r["errors"] else ""))
print(f"\nserver CPU per request = the server's CPU time over the whole run (warm-up included) "
      f"/ requests completed; other load = CPU the rest of the machine used meanwhile "
      f"(not the server, not the load generator). Results: {sys.argv[2]}/results.jsonl")
if any(r["errors"] for r in rs):
    sys.exit("errors during the runs: see results.jsonl")
PY
