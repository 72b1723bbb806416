#!/usr/bin/env bash
# Property-based API testing of the gateway against its own OpenAPI document with
# schemathesis (PyPI, own venv under $TACIT_TOOLS_DIR/schemathesis-venv), bounded.
# Usage: scripts/schemathesis.sh [MAX_SECONDS]   (default 150)
# Starts `tacit-backend serve` (TACIT_BACKEND_BIN, else target/debug) on embedded storage
# with an admin token and runs every check except `positive_data_acceptance`: the gateway
# rightly refuses schema-valid requests that break rules no schema states (an enrolment
# token that does not exist, a signature that does not verify, a factor that is not
# configured). A 5xx, an undocumented status code, an answer that does not match its
# schema, or schema-violating input accepted fails the run. Fixed seed: reproducible. One
# worker: hypothesis parsing lambdas in two threads trips a CPython 3.11 AST error.
set -euo pipefail
cd "$(dirname "$0")/.."
max_time="${1:-150}"
# shellcheck source=tools/lib.sh
. scripts/tools/lib.sh
take_lock schemathesis
ensure_venv "$TACIT_TOOLS_DIR/schemathesis-venv" "schemathesis==4.32.5"
st="$TACIT_TOOLS_DIR/schemathesis-venv/bin/schemathesis"

bin="${TACIT_BACKEND_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/tacit-backend}"
[ -x "$bin" ] || die "no backend binary at $bin (cargo build -p tacit-backend)"
work="$(mktemp -d)"
trap 'kill "${gateway_pid:-}" 2>/dev/null || true; wait "${gateway_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
start_embedded_gateway "$bin" "$work" schemathesis
cd "$work"
"$st" run "$gateway_url/openapi.json" \
  -H "Authorization: Bearer schemathesis" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples 25 --seed 20261126 --workers 1 --max-time "$max_time" \
  >"$work/st.log" 2>&1 || {
  cp "$work/st.log" "${TMPDIR:-/tmp}/tacit-schemathesis.log"
  cat "$work/st.log" >&2
  tail -n 20 "$work/server.log" >&2
  die "schemathesis found failures (above)"
}
grep -E "generated|passed|Test cases|Seed|API Operations|Tested" "$work/st.log" || true
tail -n 3 "$work/st.log"
