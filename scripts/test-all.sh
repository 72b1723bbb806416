#!/usr/bin/env bash
# The project's one test command (README.md). Installs what it needs, starts the
# services its tests use (PostgreSQL, S3), runs formatting and lint checks, every test of
# the workspace, the bindings, the container and manifests, the README's own commands and
# the fuzz targets. Tests that read the real data sets in ../shared/data skip with a
# message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s ===\n' "$*"; }

step "cargo fetch: every locked crate, for every platform (later steps may run --offline)"
cargo fetch --locked

step "python venv (numpy, scipy for the reference cross-checks; the Python factor's packages and tritonclient)"
TACIT_PYTHON="$(bash scripts/tools/python-venv.sh | tail -n 1)"
export TACIT_PYTHON

step "PyTorch peer venv (Debian's python3-torch; for the serving benchmark's equivalence test)"
if [ "$(id -u)" = 0 ] || python3 -c 'import torch' 2>/dev/null; then
  TACIT_PEER_PYTHON="$(bash bench/python-peer/venv.sh | tail -n 1)"
  export TACIT_PEER_PYTHON TACIT_REQUIRE_PEER=1
else
  echo "SKIP: no root to install python3-torch; backend/tests/python_peer.rs will skip"
fi

step "Chromium (headless browser test of the simulator's HTML report)"
if [ "$(id -u)" = 0 ] || command -v chromium >/dev/null 2>&1; then
  TACIT_CHROMIUM="$(bash scripts/tools/chromium.sh | tail -n 1)"
  export TACIT_CHROMIUM
else
  echo "SKIP: no root to install chromium; simulator/tests/report_html.rs will skip"
fi

step "services: throwaway PostgreSQL and S3 (moto)"
svc="$(mktemp -d /var/tmp/tacit-test-svc.XXXXXX)"
chmod 755 "$svc"
cleanup() {
  bash scripts/tools/s3.sh stop "$svc/s3" >/dev/null 2>&1 || true
  bash scripts/tools/postgres.sh stop "$svc/pg" >/dev/null 2>&1 || true
  rm -rf "$svc"
}
trap cleanup EXIT
set -a
eval "$(bash scripts/tools/postgres.sh start "$svc/pg")"
eval "$(bash scripts/tools/s3.sh start "$svc/s3")"
set +a
echo "PostgreSQL: $DATABASE_URL  S3: $S3_ENDPOINT"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo clippy with the CUDA backend (compile-only: no GPU needed)"
# The cuda feature builds without a CUDA toolkit; linting it here keeps the GPU path
# from rotting. The run-time check is scripts/gpu-check.sh on a GPU machine.
cargo clippy --locked -p tacit-models -p tacit-backend --features tacit-backend/cuda --all-targets -- -D warnings

step "crate boundaries: pure crates without FFI/SQLite/HTTP/runtime; the phone SDK used by app-facing code only"
bash scripts/crate-boundaries.sh

step "the README's quickstarts are the files the binding tests run"
bash scripts/check-quickstarts.sh

step "supply chain: cargo deny (licenses, bans, sources; advisories where the RustSec database is reachable)"
bash scripts/deny.sh

step "cargo test (workspace; includes the reduced real-data evaluation of the models)"
# The end-to-end test starts the backend binary, which `cargo test --workspace` builds
# before running any test (simulator/tests/e2e_services.rs).
TACIT_BACKEND_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/tacit-backend" \
  cargo test --workspace --locked

step "benchmarks: a smoke run of every bench binary (debug build, tiny inputs; the measurements are in BENCHMARKS.md)"
bash scripts/bench-smoke.sh

step "bindings: the same scenario in Python, Kotlin and Swift against the real gateway; the platform layers (Kotlin, Swift) and the Python wheel with their quickstarts"
bash bindings/run-tests.sh

step "schemathesis: the gateway against its OpenAPI document (bounded, fixed seed)"
TACIT_BACKEND_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/tacit-backend" \
  bash scripts/schemathesis.sh "${TACIT_SCHEMATHESIS_SECONDS:-120}"

step "bad inputs: hostile requests against the gateway (no 5xx, no hang, every error JSON)"
TACIT_BACKEND_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/tacit-backend" \
  bash scripts/bad-inputs.sh

step "python factor (examples/python-factor): unit tests, OIP v2 conformance with tritonclient, job store restarts"
bash examples/python-factor/run-tests.sh

step "face factor (examples/face-factor): images and their bounds, calibration, metrics, evaluation on real faces, end to end through the bindings and the gateway"
bash examples/face-factor/run-tests.sh

step "container: deploy/Dockerfile built and run with podman (keys, health, SIGTERM)"
# Needs root (podman here); skipped with a message otherwise. Uses the debug binary that
# the steps above built; the image's runtime stage is the production one.
bash deploy/test-container.sh

step "container: the face factor's image (examples/face-factor/Dockerfile) built and run with podman"
bash examples/face-factor/test-container.sh

step "kubernetes: deploy/k8s built with kustomize, kubernetes-validate --strict, policy"
bash deploy/validate-k8s.sh

step "the README's commands, word for word: the simulator from the repository root, the backend in an empty folder"
bash scripts/readme-commands.sh --self-test
bash scripts/readme-commands.sh

step "simulator: the protocol demo"
cargo run --locked -p tacit-simulator --bin tacit-sim -- demo

step "fuzz: every target of shared/fuzz, ${TACIT_FUZZ_SECONDS:-20} s each (AddressSanitizer)"
# The fuzz crate is outside the workspace (cargo-fuzz builds it with sanitizers). Longer
# runs and their figures: RELIABILITY.md.
bash scripts/fuzz.sh "${TACIT_FUZZ_SECONDS:-20}"
