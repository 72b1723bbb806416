#!/usr/bin/env bash
# Hostile inputs against a real gateway (scripts/bad-inputs.py): every route with every
# method, undecodable paths, broken JSON, malformed envelopes, forged signatures, weak
# keys, admin-token variants, raw HTTP. Fails on any 5xx, hang, dropped connection or
# error answer without the `{"error","code"}` JSON body. Starts `tacit-backend serve`
# (TACIT_BACKEND_BIN, else target/debug) on embedded storage; writes the counts to
# OUT (default: $TMPDIR/tacit-bad-inputs.json) for RELIABILITY.md.
# Usage: scripts/bad-inputs.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib.sh
. scripts/tools/lib.sh
out="${1:-${TMPDIR:-/tmp}/tacit-bad-inputs.json}"
bin="${TACIT_BACKEND_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/tacit-backend}"
[ -x "$bin" ] || die "no backend binary at $bin (cargo build -p tacit-backend)"
work="$(mktemp -d)"
trap 'kill "${gateway_pid:-}" 2>/dev/null || true; wait "${gateway_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
start_embedded_gateway "$bin" "$work" bad-inputs-admin
python3 scripts/bad-inputs.py "$gateway_url" bad-inputs-admin --json "$out" || {
  tail -n 20 "$work/server.log" >&2
  exit 1
}
if grep -q "panicked" "$work/server.log"; then
  grep -m5 "panicked" "$work/server.log" >&2
  echo "the gateway panicked" >&2
  exit 1
fi
