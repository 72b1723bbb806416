#!/usr/bin/env bash
# Debian's Chromium for the headless browser test of the simulator's HTML report.
# Usage: scripts/tools/chromium.sh   -> last stdout line: the chromium binary
# Installs the `chromium` package when missing (needs root); a no-op afterwards.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

take_lock chromium
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi
command -v chromium >/dev/null 2>&1 || die "chromium not installed"
log "$(chromium --version 2>/dev/null | head -n 1)"
command -v chromium
