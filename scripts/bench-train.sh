#!/usr/bin/env bash
# Training throughput: burn (this repo) vs PyTorch on the same model, loss and data.
# Needs Debian's python3-torch (apt-get install python3-torch) for the peer.
# Usage: scripts/bench-train.sh [steps]     (BENCHMARKS.md quotes its output)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-500}
TACIT_BENCH_STEPS=$steps cargo bench -q -p tacit-models --bench train_throughput 2>/dev/null | tee /tmp/tacit-bench-burn.json
py=${TACIT_TORCH_PYTHON:-/usr/bin/python3}
if ! "$py" -c "import torch" 2>/dev/null; then
    echo "SKIPPED: no PyTorch for $py (apt-get install python3-torch), no ratio" >&2
    exit 0
fi
"$py" backend/models/benches/train_throughput_torch.py 1 cpu "$steps" | tee /tmp/tacit-bench-torch.json
"$py" - <<'PY'
import json
b = [json.loads(l) for l in open('/tmp/tacit-bench-burn.json') if l.startswith('{')]
t = json.loads(open('/tmp/tacit-bench-torch.json').read())
for r in b:
    print(f"ratio {r['backend']} / torch {t['backend']}: {r['steps_per_s'] / t['steps_per_s']:.2f}x steps/s")
PY
