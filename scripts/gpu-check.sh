#!/usr/bin/env bash
# The CUDA check, run on a lent GPU machine from the repository root with .gpu/ carried
# (made by scripts/gpu-pack.sh). Writes everything to $OUT (default ./gpu-out):
# training throughput of burn on CPU and CUDA, the PyTorch peer on the same machine
# (CPU and CUDA, if the image has torch), batch scoring throughput on CPU and CUDA across
# batch sizes (where the GPU starts to pay: factor.gpu_min_rows), and the population
# evaluations trained on CUDA.
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
tar -C .gpu -xJf .gpu/pack.tar.xz
nvidia-smi -L | tee -a "$OUT/summary.txt"; ldd --version | head -1 | tee -a "$OUT/summary.txt"
# NVRTC (run-time kernel compiler) and the driver library, wherever the image keeps them.
extra=$(find / -xdev \( -name 'libnvrtc.so*' -o -name 'libcuda.so*' \) 2>/dev/null | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${extra}${LD_LIBRARY_PATH:-}"
export TACIT_LOG=info
B=.gpu/bin/tacit-backend
log "burn training throughput (CPU ndarray, CUDA)"
TACIT_BENCH_STEPS=${STEPS:-500} timeout 150 .gpu/bin/train_throughput 2>"$OUT/bench-burn.err" | tee -a "$OUT/summary.txt"
log "batch scoring throughput (CPU ndarray, CUDA), rows/s by batch size"
TACIT_BENCH_SECONDS=${SCORE_SECONDS:-2} timeout 120 .gpu/bin/score_throughput 2>"$OUT/bench-score.err" | tee -a "$OUT/summary.txt"
if python3 -c 'import torch' 2>/dev/null; then
  log "pytorch peer"
  for spec in "1 cpu" "16 cpu" "1 cuda"; do
    timeout 60 python3 backend/models/benches/train_throughput_torch.py $spec ${STEPS:-500} 2>>"$OUT/torch.err" | tee -a "$OUT/summary.txt"
  done
fi
log "CMU population protocol, trained on CUDA"
timeout 200 $B eval --data .gpu/data/cmu/DSL-StrongPasswordData.csv --protocol population --device cuda \
  --json "$OUT/cmu-cuda.json" 2>"$OUT/cmu-cuda.err" | tee -a "$OUT/summary.txt"
log "gait population protocol, trained on CUDA"
timeout 150 $B eval --data .gpu/data/gait --protocol population --device cuda \
  --json "$OUT/gait-cuda.json" 2>"$OUT/gait-cuda.err" | tee -a "$OUT/summary.txt"
grep -h -i "cuda\|backend" "$OUT"/*.err | head -20 | tee -a "$OUT/summary.txt"
