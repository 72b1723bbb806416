#!/usr/bin/env bash
# Venv of the PyTorch peer: $TACIT_TOOLS_DIR/peer-venv (default /var/tmp/tacit-tools).
# Debian's python3-torch (installed here when missing and run as root) and numpy through
# --system-site-packages, plus requirements.txt from PyPI. Re-running is a no-op (stamp).
# Usage: bench/python-peer/venv.sh   -> last stdout line: the venv's python
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../../scripts/tools/lib.sh disable=SC1091
. "$here/../../scripts/tools/lib.sh"

py=/usr/bin/python3
dir="$TACIT_TOOLS_DIR/peer-venv"
take_lock peer-venv
"$py" -c 'import torch' 2>/dev/null || apt_install python3-torch python3-numpy
"$py" -c 'import torch' 2>/dev/null || die "$py cannot import torch (apt-get install python3-torch)"
want="$( (cat "$here/requirements.txt"; "$py" --version) | hash_text)"
if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.tacit-stamp" 2>/dev/null)" = "$want" ] &&
  "$dir/bin/python" -c 'import torch, fastapi, uvicorn' 2>/dev/null; then
  log "venv $dir up to date"
else
  rm -rf "$dir"
  log "creating venv $dir (system site packages: torch, numpy)"
  "$py" -m venv --system-site-packages "$dir" >&2 || {
    apt_install python3-venv
    "$py" -m venv --system-site-packages "$dir" >&2
  }
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt" >&2 ||
    die "pip install -r $here/requirements.txt failed (is PyPI reachable?)"
  echo "$want" >"$dir/.tacit-stamp"
fi
echo "$dir/bin/python"
