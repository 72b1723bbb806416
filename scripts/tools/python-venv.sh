#!/usr/bin/env bash
# Python venv for tests and tools: $TACIT_TOOLS_DIR/venv (default /var/tmp/tacit-tools/venv).
# Usage: scripts/tools/python-venv.sh      -> last stdout line: path of the venv's python
# Add packages to PACKAGES below (pip requirement syntax, pin with ==). Re-running with
# the same list (and the same interpreter, env TACIT_PYTHON, default python3) is a no-op:
# a stamp file in the venv holds the hash of the list. Adding a package installs only the
# addition; removing one from the list does not uninstall it (delete the venv for that).
# The lines of examples/python-factor/requirements.txt are part of the list.
set -euo pipefail

PACKAGES=(
  numpy
  scipy
  # the OIP v2 client of the factor conformance test (scripts/factor_conformance.py)
  'tritonclient[http]==2.73.0'
  # the relying party's verifier of signed verdicts (examples/relying-party/verify.py,
  # the Python binding test): PyJWT with cryptography for Ed25519 (cryptography itself
  # is pinned by the Python factor's requirements below)
  'PyJWT[crypto]==2.15.1'
  # builds the Python wheel of the phone core (bindings/python/build-wheel.sh)
  'maturin==1.13.0'
)
# The Python factor example's own pins (examples/python-factor/run-tests.sh runs it here).
while IFS= read -r req || [ -n "$req" ]; do
  req="${req%%#*}"
  req="${req//[[:space:]]/}"
  [ -z "$req" ] || PACKAGES+=("$req")
done <"$(dirname "$0")/../../examples/python-factor/requirements.txt"

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

take_lock venv
ensure_venv "$TACIT_TOOLS_DIR/venv" "${PACKAGES[@]}"
echo "$TACIT_TOOLS_DIR/venv/bin/python"
