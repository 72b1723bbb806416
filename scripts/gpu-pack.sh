#!/usr/bin/env bash
# Builds the CUDA-enabled binaries here (the GPU machines have no crates.io) and packs
# them with the evaluation data into .gpu/ (git-ignored), for scripts/gpu-check.sh on a
# lent GPU machine. Usage: scripts/gpu-pack.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR_CUDA:-/var/tmp/tacit-target-cuda}
CARGO_TARGET_DIR=$target cargo build --release -p tacit-backend --features cuda
CARGO_TARGET_DIR=$target cargo bench --no-run -p tacit-models --features cuda --bench train_throughput --bench score_throughput
bench=$(ls -t "$target"/release/deps/train_throughput-* | grep -v '\.d$' | head -1)
score_bench=$(ls -t "$target"/release/deps/score_throughput-* | grep -v '\.d$' | head -1)
data=${TACIT_DATA_DIR:-../shared/data}
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/stage/bin .gpu/stage/data
cp "$target/release/tacit-backend" .gpu/stage/bin/tacit-backend
cp "$bench" .gpu/stage/bin/train_throughput
cp "$score_bench" .gpu/stage/bin/score_throughput
strip .gpu/stage/bin/*
cp -r "$data/keystroke/cmu" .gpu/stage/data/cmu
cp -r "$data/gait/hoang-nexusone" .gpu/stage/data/gait
tar -C .gpu/stage -cJf .gpu/pack.tar.xz bin data
rm -rf .gpu/stage
ls -la .gpu
