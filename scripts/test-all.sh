#!/usr/bin/env bash
# The project's one test command (README.md). Runs formatting and lint checks, every
# test of the workspace, and the demo. Later issues add the services their tests need
# (PostgreSQL, S3, binding toolchains) here.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s ===\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
cargo test --workspace --locked

step "demo (README first command, debug build)"
cargo run --locked -p tacit-simulator --bin tacit-sim

step "fuzz target compiles"
# The fuzz crate is outside the workspace (cargo-fuzz builds it with sanitizers);
# checking it here keeps it from rotting. A fuzzing run is documented in README.md.
cargo check --locked --manifest-path shared/fuzz/Cargo.toml
