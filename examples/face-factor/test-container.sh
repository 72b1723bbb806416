#!/usr/bin/env bash
# Builds the face factor's image (examples/face-factor/Dockerfile) with podman and checks
# that it serves: as the non-root user, read-only root file system (job records in the
# mounted /data), no capabilities,
# published on loopback only; ready once its model (calibrated here on ORL people 11..20,
# mounted read-only) is loaded; an ORL face in gives a 128-d embedding out, a flat grey
# image gives the refusal `no_face`; calls without the factor token are 401; /metrics
# answers; SIGTERM stops it. The packages are wheels built on the host from the face
# venv's exact versions (containers here reach no network).
#
# Usage: examples/face-factor/test-container.sh [--keep]
# Needs root (podman here) and ../shared/data/face (the model is calibrated on it). Not
# root, or no data: prints "SKIP: ..." and exits 0. Any other failure exits non-zero.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
# shellcheck source=../../scripts/tools/lib.sh
. scripts/tools/lib.sh

keep=""
[ "${1:-}" = --keep ] && keep=1
orl="${TACIT_DATA_DIR:-$root/../shared/data}/face/orl-att"
if [ ! -d "$orl/s11" ]; then
  echo "SKIP: face container test (no face data at $orl)"
  exit 0
fi

rc=0
conf="$(bash scripts/tools/podman.sh python-base)" || rc=$?
if [ "$rc" -eq 3 ]; then
  echo "SKIP: face container test (podman needs root on this machine)"
  exit 0
fi
[ "$rc" -eq 0 ] || die "scripts/tools/podman.sh python-base failed (exit $rc)"
set -a
eval "$conf"
set +a
t0=$SECONDS

IMAGE="localhost/tacit-face-factor:test-$$"
py="$(bash scripts/tools/face-venv.sh | tail -n 1)"
tmp="$(mktemp -d /var/tmp/tacit-face-container.XXXXXX)"
ctr="tacit-face-container-$$"
cleanup() {
  podman rm -f -t 2 "$ctr" >/dev/null 2>&1 || true
  rm -rf "$here/wheels"
  if [ -n "$keep" ]; then
    log "kept $tmp and $IMAGE"
  else
    rm -rf "$tmp"
    podman rmi "$IMAGE" >/dev/null 2>&1 || true
  fi
  podman image prune -f >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---- wheels of exactly the face venv's packages (cached in the tools dir) ----
wheels="$TACIT_TOOLS_DIR/face-wheels"
mkdir -p "$wheels"
"$py" -m pip freeze --all --exclude-editable | grep -v '^\(pip\|setuptools\|wheel\)==' >"$tmp/requirements.lock"
if ! cmp -s "$tmp/requirements.lock" "$wheels/requirements.lock"; then
  log "pip wheel: the face venv's $(wc -l <"$tmp/requirements.lock") packages into $wheels"
  "$py" -m pip wheel -q --disable-pip-version-check --no-deps -w "$wheels" -r "$tmp/requirements.lock" >&2 ||
    die "pip wheel failed (is PyPI reachable?)"
  cp "$tmp/requirements.lock" "$wheels/requirements.lock"
fi
rm -rf "$here/wheels"
cp -r "$wheels" "$here/wheels"
t_wheels=$SECONDS

# ---- build ----
log "podman build -f examples/face-factor/Dockerfile (BASE_IMAGE=$TACIT_BASE_IMAGE)"
if ! podman build -q -f examples/face-factor/Dockerfile -t "$IMAGE" \
  --build-arg BASE_IMAGE="$TACIT_BASE_IMAGE" . >"$tmp/build.log" 2>&1; then
  tail -n 30 "$tmp/build.log" >&2
  die "podman build failed"
fi
t_build=$SECONDS
got="$(podman image inspect --format '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.ExposedPorts}}' "$IMAGE")"
want='10001:10001 ["/opt/face/bin/python","-m","tacitface"] {"8093/tcp":{}}'
[ "$got" = "$want" ] || die "image config: got '$got', want '$want'"
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
log "image $IMAGE: $((size / 1024 / 1024)) MiB"

# ---- a model, a token ----
mkdir -p "$tmp/cal" "$tmp/run" "$tmp/data"
for p in $(seq 11 20); do ln -s "$orl/s$p" "$tmp/cal/s$p"; done
(cd "$here" && "$py" -m tacitface calibrate --data "$tmp/cal" --out "$tmp/run/face-model.json" >&2)
token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$token" >"$tmp/run/factor.token"
chmod 600 "$tmp/run/factor.token"
chmod 644 "$tmp/run/face-model.json"
chown -R 10001:10001 "$tmp/run" "$tmp/data"

# ---- run, restricted like the Kubernetes securityContext ----
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
podman run -d --name "$ctr" --read-only --cap-drop ALL --security-opt no-new-privileges \
  -p "127.0.0.1:$port:8093" -v "$tmp/run:/run/face:ro" -v "$tmp/data:/data" \
  -e FACE_MODEL_FILE=/run/face/face-model.json -e TACIT_FACTOR_TOKEN_FILE=/run/face/factor.token \
  "$IMAGE" >/dev/null || die "podman run failed"
url="http://127.0.0.1:$port"
ready=""
for _ in $(seq 300); do
  if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url/v2/health/ready" 2>/dev/null; then
    ready=1
    break
  fi
  [ "$(podman inspect -f '{{.State.Running}}' "$ctr")" = true ] || break
  sleep 0.2
done
if [ -z "$ready" ]; then
  podman logs "$ctr" 2>&1 | tail -n 30 >&2
  die "the face factor did not become ready"
fi
t_ready=$SECONDS

python3 - "$url" "$token" "$orl/s1/1.pgm" <<'PY' || die "the face factor in the container answered wrongly"
import base64, json, sys, urllib.error, urllib.request
url, token, face = sys.argv[1:4]

def call(path, body=None, auth=True):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body else None)
    if body:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

# A flat grey PGM: a valid image without a face.
flat = b"P5\n92 112\n255\n" + bytes([128]) * (92 * 112)
with open(face, "rb") as f:
    images = [base64.b64encode(f.read()).decode(), base64.b64encode(flat).decode()]
body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": images}]}
st, raw = call("/v2/models/face/infer", body)
assert st == 200, (st, raw[:300])
out = {o["name"]: o for o in json.loads(raw)["outputs"]}
assert out["embedding"]["shape"] == [2, 128], out["embedding"]["shape"]
assert out["refusal"]["data"] == ["", "no_face"], out["refusal"]["data"]
assert any(abs(v) > 0.01 for v in out["embedding"]["data"][:128])
st, _ = call("/v2/models/face/infer", body, auth=False)
assert st == 401, st
st, raw = call("/metrics")
assert st == 200 and b"tacit_http_requests_in_flight" in raw, st
st, raw = call("/v2/models/face")
assert st == 200 and json.loads(raw)["name"] == "face", raw[:200]
print("face factor in the container: embedding, refusal, token, metrics, metadata ok", file=sys.stderr)
PY

# ---- stop ----
podman stop -t 15 "$ctr" >/dev/null || die "podman stop failed"
code="$(podman inspect -f '{{.State.ExitCode}}' "$ctr")"
[ "$code" = 0 ] || {
  podman logs "$ctr" 2>&1 | tail -n 20 >&2
  die "the face factor exited $code on SIGTERM"
}
echo "face container ok: wheels $((t_wheels - t0)) s, build $((t_build - t_wheels)) s, ready $((t_ready - t_build)) s (incl. calibration), image $((size / 1024 / 1024)) MiB"
