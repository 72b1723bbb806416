#!/usr/bin/env bash
# A smoke run of every benchmark binary of the workspace: each one built (debug, as
# `cargo test` builds them) and run once on a tiny input, so that none of the commands
# behind BENCHMARKS.md can rot between measurements. The numbers printed here mean
# nothing (debug build, a few iterations); the measurements are `cargo bench ...` as
# BENCHMARKS.md gives them. Criterion benches run in their test mode (each once).
#
#   bash scripts/bench-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
  local what="$1"
  shift
  printf -- '--- %s\n' "$what"
  local start=$SECONDS
  "$@"
  printf -- '--- %s: ok (%d s)\n' "$what" $((SECONDS - start))
}

# The benches' own storage: SQLite and files, whatever the environment points at.
local_store=(env -u DATABASE_URL -u S3_ENDPOINT)

run "crypto (criterion, test mode)" \
  cargo test --locked -q -p tacit-shared --bench crypto
run "dsp (criterion, test mode)" \
  cargo test --locked -q -p tacit-features --bench dsp
run "dsp_vs_numpy (20 s of walking, one run)" \
  cargo test --locked -q -p tacit-features --bench dsp_vs_numpy -- --seconds 20 --runs 1
run "record_cost (200 calls)" \
  cargo test --locked -q -p tacit-mobile-core --bench record_cost -- --calls 200 --pace-us 0
run "ingest_load (128 envelopes, 2 connections)" \
  "${local_store[@]}" cargo test --locked -q -p tacit-backend --bench ingest_load -- \
  --envelopes 128 --concurrency 2 --batch 32
run "soak (3 s)" \
  "${local_store[@]}" cargo test --locked -q -p tacit-backend --bench soak -- \
  --seconds 3 --uploads 2 --auths 1 --devices 2
run "at_rest (1 round of 2 calls)" \
  cargo test --locked -q -p tacit-backend --bench at_rest -- --rounds 1 --iters 2
run "train_throughput (2 steps)" \
  env TACIT_BENCH_STEPS=2 cargo test --locked -q -p tacit-models --bench train_throughput
run "score_throughput (0.2 s per batch size)" \
  env TACIT_BENCH_SECONDS=0.2 cargo test --locked -q -p tacit-models --bench score_throughput
