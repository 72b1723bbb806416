#!/usr/bin/env bash
# Tests of the face factor (examples/face-factor): image reading and its bounds,
# detection failures, calibration, metrics, the evaluation on eight ORL people in mixed
# formats, and the service over HTTP (images to embeddings, scores, the token, no image
# on disk or in logs, scripts/factor_conformance.py with tritonclient), and end to end
# through the phone core's Python bindings and the real gateway, and the simulator's
# world with faces as its third factor: the parts on
# real faces are skipped, saying so, without ../shared/data/face. Packages: the face
# venv (scripts/tools/face-venv.sh: dlib-bin, face-recognition-models; ~20 s first run).
# The last line is "N passed, M failed"; the exit status is non-zero if anything failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="$(bash "$root/scripts/tools/face-venv.sh" | tail -n 1)"
# The OIP v2 conformance test's client (tritonclient) lives in the repository's venv.
CONFORMANCE_PYTHON="$(bash "$root/scripts/tools/python-venv.sh" | tail -n 1)"
export CONFORMANCE_PYTHON
[ -x "$py" ] || { echo "[face-factor] ERROR: no face venv python ($py)" >&2; exit 1; }
# The end-to-end test drives the real gateway through the generated Python bindings.
gen="$(bash "$root/bindings/generate.sh" --languages python | tail -n 1)"
(cd "$root" && cargo build --locked -q -p tacit-backend -p tacit-simulator)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
TACIT_BACKEND_BIN="$target_dir/debug/tacit-backend"
TACIT_BINDINGS_PY="$gen/python"
TACIT_SIM_BIN="$target_dir/debug/tacit-sim"
export TACIT_BACKEND_BIN TACIT_BINDINGS_PY TACIT_SIM_BIN
cd "$here"
PYTHONDONTWRITEBYTECODE=1 "$py" - <<'PY'
import sys, unittest
suite = unittest.defaultTestLoader.discover("tests", pattern="test_*.py", top_level_dir=".")
r = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
failed = len(r.failures) + len(r.errors) + len(r.unexpectedSuccesses)
line = f"{r.testsRun - failed - len(r.skipped)} passed, {failed} failed"
if r.skipped:
    line += f", {len(r.skipped)} skipped"
    for _, why in r.skipped:
        print(f"[face-factor] {why}", file=sys.stderr)
print(line)
sys.exit(1 if failed or r.testsRun == 0 else 0)
PY
