#!/usr/bin/env bash
# Python venv for tests and tools: $TACIT_TOOLS_DIR/venv (default /var/tmp/tacit-tools/venv).
# Usage: scripts/tools/python-venv.sh      -> last stdout line: path of the venv's python
# Add packages to PACKAGES below (pip requirement syntax, pin with ==). Re-running with
# the same list (and the same interpreter, env TACIT_PYTHON, default python3) is a no-op:
# a stamp file in the venv holds the hash of the list. Adding a package installs only the
# addition; removing one from the list does not uninstall it (delete the venv for that).
set -euo pipefail

PACKAGES=(
  numpy
  scipy
)

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

take_lock venv
ensure_venv "$TACIT_TOOLS_DIR/venv" "${PACKAGES[@]}"
echo "$TACIT_TOOLS_DIR/venv/bin/python"
