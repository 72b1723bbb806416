#!/usr/bin/env bash
# The face factor's venv: $TACIT_TOOLS_DIR/face-venv (default /var/tmp/tacit-tools/face-venv),
# from examples/face-factor/requirements.txt, plus face_recognition installed --no-deps
# (it declares the source package `dlib`, which the prebuilt `dlib-bin` provides).
# Usage: scripts/tools/face-venv.sh   -> last stdout line: path of the venv's python.
# Re-running with the same pins is a no-op (ensure_venv's stamp).
set -euo pipefail

PACKAGES=()
while IFS= read -r req || [ -n "$req" ]; do
  req="${req%%#*}"
  req="${req//[[:space:]]/}"
  [ -z "$req" ] || PACKAGES+=("$req")
done <"$(dirname "$0")/../../examples/face-factor/requirements.txt"
FACE_RECOGNITION='face_recognition==1.3.0'

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

take_lock face-venv
dir="$TACIT_TOOLS_DIR/face-venv"
ensure_venv "$dir" "${PACKAGES[@]}"
if [ "$("$dir/bin/python" -c 'import importlib.metadata as m; print(m.version("face_recognition"))' 2>/dev/null)" != "${FACE_RECOGNITION#*==}" ]; then
  log "pip install --no-deps $FACE_RECOGNITION"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$FACE_RECOGNITION" >&2 ||
    die "pip install $FACE_RECOGNITION failed (is PyPI reachable?)"
fi
echo "$dir/bin/python"
