#!/usr/bin/env bash
# Builds the tacit-backend image from deploy/Dockerfile with podman and checks that it
# runs: keygen into a mounted data directory, the Kubernetes key-copy init command on a
# Secret-volume layout, then `serve` (the image's default command)
# with a read-only root filesystem, no capabilities and the non-root user, published on
# loopback only; /healthz, /readyz, /openapi.json and /metrics must answer 200 and an
# admin call must write to the database under /data; SIGTERM must stop it cleanly. A
# factor container (keystroke-fixed) must answer the OIP v2 health and metadata
# endpoints, and an infer call once its model (trained by the image) is loaded.
#
# Usage: deploy/test-container.sh [--release] [--bin PATH] [--keep]
#   --release   put the release binary in the image (default: the debug binary, which the
#               test command has already built; the image is the same either way)
#   --bin PATH  put this binary in the image instead of building one (e.g. a CUDA build)
#   --keep      keep the image (localhost/tacit-backend:test-PID) and the temp dir afterwards
#
# How the image is built here: no registry pulls and no Rust inside containers are
# possible on these machines, so the binary is compiled on the host (Debian 12, glibc
# 2.36), stripped, copied to deploy/prebuilt/ (git-ignored) and the Dockerfile is built
# with BINARY_FROM=prebuilt and BUILDER_IMAGE=BASE_IMAGE=localhost/tacit-debian:bookworm,
# a debootstrap image made once by scripts/tools/podman.sh. Production builds compile in the
# Dockerfile's build stage instead (deploy/README.md).
#
# Needs root (podman's storage and networking here). Not root: prints "SKIP: ..." and
# exits 0. Any other failure (podman unusable as root included) exits non-zero.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck source=../scripts/tools/lib.sh
. scripts/tools/lib.sh

profile=debug
bin=""
keep=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --bin)
      [ "$#" -ge 2 ] || die "--bin needs a path"
      bin="$2"
      shift
      ;;
    --keep) keep=1 ;;
    *)
      sed -n '11,15p' "$0" >&2
      exit 2
      ;;
  esac
  shift
done

# One tag per run: concurrent runs share the image store (and its cached layers).
IMAGE="localhost/tacit-backend:test-$$"
t_start=$SECONDS

# ---- podman and the local base image ----
rc=0
conf="$(bash scripts/tools/podman.sh base)" || rc=$?
if [ "$rc" -eq 3 ]; then
  echo "SKIP: container test (podman needs root on this machine)"
  exit 0
fi
[ "$rc" -eq 0 ] || die "scripts/tools/podman.sh base failed (exit $rc)"
set -a
eval "$conf"
set +a
t_tools=$SECONDS

# ---- the binary ----
if [ -z "$bin" ]; then
  log "building tacit-backend ($profile)"
  prof_args=()
  [ "$profile" = debug ] || prof_args=(--release)
  cargo build --locked -q -p tacit-backend "${prof_args[@]}" >&2
  target_dir="${CARGO_TARGET_DIR:-$root/target}"
  case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
  bin="$target_dir/$profile/tacit-backend"
fi
[ -x "$bin" ] || die "not an executable: $bin"
mkdir -p deploy/prebuilt
# Stripped: the debug binary's debug info is most of its size, and the image needs none.
strip -o deploy/prebuilt/tacit-backend.tmp "$bin" 2>/dev/null || cp "$bin" deploy/prebuilt/tacit-backend.tmp
mv deploy/prebuilt/tacit-backend.tmp deploy/prebuilt/tacit-backend
t_bin=$SECONDS

tmp="$(mktemp -d /var/tmp/tacit-container-test.XXXXXX)"
ctr="tacit-container-test-$$"
ctrs=()
cleanup() {
  local c
  for c in "${ctrs[@]}"; do podman rm -f -t 2 "$c" >/dev/null 2>&1 || true; done
  if [ -n "$keep" ]; then
    log "kept $tmp and $IMAGE"
  else
    rm -rf "$tmp"
    podman rmi "$IMAGE" >/dev/null 2>&1 || true
  fi
  # Dangling layers of earlier builds of the same tag.
  podman image prune -f >/dev/null 2>&1 || true
}
trap cleanup EXIT

# ---- build ----
log "podman build -f deploy/Dockerfile (BINARY_FROM=prebuilt, BUILDER_IMAGE=BASE_IMAGE=$TACIT_BASE_IMAGE)"
if ! podman build -q -f deploy/Dockerfile -t "$IMAGE" --build-arg BINARY_FROM=prebuilt \
  --build-arg BUILDER_IMAGE="$TACIT_BASE_IMAGE" --build-arg BASE_IMAGE="$TACIT_BASE_IMAGE" . >"$tmp/build.log" 2>&1; then
  tail -n 30 "$tmp/build.log" >&2
  die "podman build failed"
fi
t_build=$SECONDS
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
log "image $IMAGE: $((size / 1024 / 1024)) MiB"

# What the image declares (a wrong USER or ENTRYPOINT fails here, not in Kubernetes).
got="$(podman image inspect --format '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.ExposedPorts}} {{json .Config.Volumes}}' "$IMAGE")"
want='10001:10001 ["/usr/local/bin/tacit-backend"] ["serve"] {"8080/tcp":{}} {"/data":{}}'
[ "$got" = "$want" ] || die "image config: got '$got', want '$want'"

# The same restrictions as the Kubernetes securityContext (deploy/k8s).
sec=(--read-only --cap-drop ALL --security-opt no-new-privileges)

# ---- keygen into the mounted data directory ----
mkdir -p "$tmp/data"
chown 10001:10001 "$tmp/data"
keys="$(podman run --rm "${sec[@]}" --network none -v "$tmp/data:/data" "$IMAGE" keygen)" ||
  die "keygen in the container failed"
key_id="$(sed -n 's/^key_id=//p' <<<"$keys")"
[ -n "$key_id" ] || die "unexpected keygen output: $keys"
secret="$(find "$tmp/data/keys" -name 'hpke-*.secret' | head -n1)"
[ -n "$secret" ] || die "keygen wrote no hpke-*.secret under data/keys"
[ "$(stat -c '%u %a' "$secret")" = "10001 600" ] || die "key file owner/mode: $(stat -c '%u %a' "$secret")"
at_rest="$tmp/data/keys/at-rest.key"
[ "$(stat -c '%u %a' "$at_rest" 2>/dev/null)" = "10001 600" ] ||
  die "keygen wrote no at-rest key with owner 10001 and mode 600 (encryption at rest is on by default)"
verdict="$(find "$tmp/data/keys" -name 'verdict-*.key' | head -n1)"
[ -n "$verdict" ] || die "keygen wrote no verdict-*.key (the verdict signing key) under data/keys"
[ "$(stat -c '%u %a' "$verdict")" = "10001 600" ] || die "verdict key owner/mode: $(stat -c '%u %a' "$verdict")"
log "keygen: key $key_id, the at-rest key and the verdict signing key"

# ---- the Kubernetes key path: Secret volume -> init container -> /keys ----
# A Secret volume holds root-owned, group-readable symlinks into a ..data directory,
# which the key ring refuses; the gateway's init container (deploy/k8s/base/gateway.yaml)
# copies the keys to mode 0600. Run that very command on such a layout, as the pod would.
init_cmd="$(sed -n 's/^ *- \(install -m 0600 .*\)$/\1/p' deploy/k8s/base/gateway.yaml)"
[ -n "$init_cmd" ] || die "no key-copy command found in deploy/k8s/base/gateway.yaml"
ts="..$(date +%Y_%m_%d_%H_%M_%S).0"
mkdir -p "$tmp/secret/$ts" "$tmp/keys"
cp "$secret" "$verdict" "$tmp/secret/$ts/"
# A published key list comes along (its content is the gateway's business, not the copy's).
echo '{"list":"","signature":""}' >"$tmp/secret/$ts/keylist.json"
ln -s "$ts" "$tmp/secret/..data"
ln -s "..data/$(basename "$secret")" "$tmp/secret/$(basename "$secret")"
ln -s "..data/$(basename "$verdict")" "$tmp/secret/$(basename "$verdict")"
ln -s "..data/keylist.json" "$tmp/secret/keylist.json"
chown -R 0:10001 "$tmp/secret"
chmod 0440 "$tmp/secret/$ts/$(basename "$secret")" "$tmp/secret/$ts/$(basename "$verdict")"
# The at-rest key's own Secret, laid out the same way.
mkdir -p "$tmp/at-rest-secret/$ts"
cp "$at_rest" "$tmp/at-rest-secret/$ts/at-rest.key"
ln -s "$ts" "$tmp/at-rest-secret/..data"
ln -s "..data/at-rest.key" "$tmp/at-rest-secret/at-rest.key"
chown -R 0:10001 "$tmp/at-rest-secret"
chmod 0440 "$tmp/at-rest-secret/$ts/at-rest.key"
chown 10001:10001 "$tmp/keys"
podman run --rm "${sec[@]}" --network none --group-add 10001 --entrypoint /bin/sh \
  -v "$tmp/secret:/run/secrets/tacit-hpke:ro" -v "$tmp/at-rest-secret:/run/secrets/tacit-at-rest:ro" \
  -v "$tmp/keys:/keys" "$IMAGE" -c "$init_cmd" ||
  die "the gateway's key-copy init command failed: $init_cmd"
for copied in "$(basename "$secret")" "$(basename "$verdict")" at-rest.key; do
  [ "$(stat -c '%u %a' "$tmp/keys/$copied")" = "10001 600" ] ||
    die "init command left $(stat -c '%u %a' "$tmp/keys/$copied") on $copied (want 10001 600)"
done
cmp -s "$tmp/secret/$ts/keylist.json" "$tmp/keys/keylist.json" ||
  die "init command did not copy keylist.json"
log "key-copy init command (Secret volume layouts -> /keys, mode 0600; key list, verdict and at-rest keys along) ok"

# ---- serve, published on loopback ----
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
admin="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# start NAME HEALTH_PATH ARGS...: runs the image detached as container NAME with ARGS
# (the image's CMD when none), the data directory mounted and port 8080 published on a
# free loopback port; waits for HEALTH_PATH to answer 200. Sets url and ready_ms.
start() {
  local name="$1" health="$2" port t0_ns
  shift 2
  url=""
  ctrs+=("$name")
  t0_ns=$(date +%s%N)
  for _ in 1 2 3; do
    port="$(free_port 58080)"
    podman rm -f "$name" >/dev/null 2>&1 || true
    # Not --rm: the exit status after SIGTERM is checked; cleanup removes it.
    if ! podman run -d --name "$name" "${sec[@]}" -p "127.0.0.1:$port:8080" \
      -v "$tmp/data:/data" -e TACIT_ADMIN_TOKEN="$admin" "${run_opts[@]}" "$IMAGE" "$@" >"$tmp/run.log" 2>&1; then
      # The port may have been taken between the check and the run: try another.
      grep -qi 'address already in use' "$tmp/run.log" && continue
      cat "$tmp/run.log" >&2
      die "podman run $* failed"
    fi
    # `podman run -d` can return while the container is still `created`: on the first
    # run after podman is installed, setting up the network (bridge, firewall chains)
    # and the first start of conmon can outlast the command. A container that is not
    # running *yet* is waited for (and started again if it stays `created`); only one
    # that has stopped, or never got going, fails the test.
    local state="" created_since=$SECONDS
    for _ in $(seq 600); do
      if [ "$(http_code "http://127.0.0.1:$port$health")" = 200 ]; then
        url="http://127.0.0.1:$port"
        break 2
      fi
      state="$(podman inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo missing)"
      case "$state" in
        running) created_since=$SECONDS ;;
        created | configured | initialized)
          if [ $((SECONDS - created_since)) -ge 5 ]; then
            log "container $name still '$state' $((SECONDS - created_since)) s after podman run: podman start"
            podman start "$name" >/dev/null 2>&1 || true
            created_since=$SECONDS
          fi
          ;;
        *)
          # Seen once in a CI run (not reproduced by hand): `podman run -d` returned
          # 0 and the container was not running a moment later, then reported
          # `created` with exit code 0 and no error. Log what podman says and run it
          # again (at most three runs), instead of failing on podman's account.
          log "container $name is '$state' before answering $health: $(podman inspect --format 'exit code {{.State.ExitCode}}, error "{{.State.Error}}"' "$name" 2>&1 | head -c 300)"
          podman logs "$name" 2>&1 | tail -n 5 >&2 || true
          continue 2
          ;;
      esac
      sleep 0.1
    done
    break
  done
  if [ -z "$url" ]; then
    podman logs "$name" 2>&1 | tail -n 30 >&2 || true
    # Empty logs say little: the container's state and the disk usually do.
    podman inspect --format 'state {{.State.Status}}, exit code {{.State.ExitCode}}, error "{{.State.Error}}", OOM {{.State.OOMKilled}}' "$name" >&2 || true
    df -h "$tmp" /var/lib/containers 2>/dev/null >&2 || true
    die "container $name (${*:-the image CMD}) did not answer $health on 127.0.0.1:${port:-?}"
  fi
  ready_ms=$((($(date +%s%N) - t0_ns) / 1000000))
}

# stop NAME: SIGTERM must end the server gracefully with exit status 0.
stop() {
  local name="$1" t0=$SECONDS status
  podman kill --signal TERM "$name" >/dev/null
  status="$(timeout 20 podman wait "$name" 2>&1)" || status="not stopped after 20 s ($status)"
  [ "$status" = 0 ] || {
    podman logs "$name" 2>&1 | tail -n 20 >&2
    die "container $name after SIGTERM: exit status $status (want 0)"
  }
  log "$name stopped by SIGTERM (exit 0) in $((SECONDS - t0)) s"
}

# The gateway reads its keys where the pod's init container puts them.
run_opts=(-e TACIT_KEYS_DIR=/keys -v "$tmp/keys:/keys:ro")
start "$ctr" /healthz
t_ready_ms=$ready_ms
log "gateway serving at $url ($t_ready_ms ms from podman run to the first 200 of /healthz)"

fail=0
for path in /healthz /readyz /openapi.json /metrics; do
  code="$(http_code "$url$path")"
  if [ "$code" = 200 ]; then
    log "GET $path -> 200"
  else
    log "ERROR: GET $path -> $code"
    fail=1
  fi
done
code="$(http_code -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d '{"user_id": "container-test"}' "$url/v1/users")"
case "$code" in
  2??) log "POST /v1/users (admin) -> $code" ;;
  *)
    log "ERROR: POST /v1/users (admin) -> $code"
    fail=1
    ;;
esac
code="$(http_code -X POST -H 'Content-Type: application/json' -d '{"user_id": "x"}' "$url/v1/users")"
case "$code" in
  401 | 403) log "POST /v1/users without the token -> $code" ;;
  *)
    log "ERROR: POST /v1/users without the token -> $code (want 401/403)"
    fail=1
    ;;
esac
[ -s "$tmp/data/tacit.sqlite3" ] || {
  log "ERROR: no database at /data/tacit.sqlite3"
  fail=1
}
if [ "$fail" -ne 0 ]; then
  podman logs "$ctr" 2>&1 | tail -n 30 >&2 || true
  die "the gateway container answered wrongly"
fi

stop "$ctr"

# ---- a factor service ----
# OIP v2 health and metadata; an infer call once the model is loaded.
fctr="$ctr-factor"
{
  run_opts=()
  # A model for it, trained by the image itself on a generated key-event CSV (8 typists,
  # a 6-key phrase) and put where the factor looks: objects/models/keystroke-fixed.tcm.
  python3 - "$tmp/data/keys.csv" <<'PY' || die "cannot write the key-event CSV"
import random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    f.write("user,session,sample,key,down_ms,up_ms\n")
    for u in range(8):
        for session in (1, 2):
            for sample in range(1, 21):
                t = 10000.0 * (session * 100 + sample)
                for k, key in enumerate(["h", "e", "l", "l", "o", "Return"]):
                    hold = 60 + 12 * ((u * 3 + k) % 5) + random.uniform(-4, 4)
                    f.write(f"u{u},{session},{sample},{key},{t:.1f},{t + hold:.1f}\n")
                    t += 110 + 25 * ((u * 7 + k * 3) % 6) + random.uniform(-7, 7)
PY
  mkdir -p "$tmp/data/objects/models"
  chmod 0777 "$tmp/data/objects" "$tmp/data/objects/models"
  chmod 0644 "$tmp/data/keys.csv"
  podman run --rm "${sec[@]}" -v "$tmp/data:/data" "$IMAGE" train --data /data/keys.csv \
    --steps 60 --out /data/objects/models/keystroke-fixed.tcm >"$tmp/train.log" 2>&1 \
    || { cat "$tmp/train.log" >&2; die "training in the container failed"; }
  log "factor: $(grep '^trained' "$tmp/train.log")"
  start "$fctr" /v2/health/live serve --role factor:keystroke-fixed
  log "factor keystroke-fixed serving at $url ($ready_ms ms to /v2/health/live)"
  # Every route but the probes needs the factor token keygen wrote (owned by the
  # container's user: read through the user namespace when rootless).
  code="$(http_code "$url/v2")"
  [ "$code" = 401 ] || die "factor: GET /v2 without the token -> $code (want 401)"
  token="$(cat "$tmp/data/keys/factor.token" 2>/dev/null || podman unshare cat "$tmp/data/keys/factor.token")" ||
    die "cannot read the factor token keygen wrote"
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $token" "$url/v2" || true)"
  [ "$code" = 200 ] || die "factor: GET /v2 -> $code"
  ready=""
  for _ in $(seq 50); do
    if [ "$(http_code "$url/v2/health/ready")" = 200 ]; then
      ready=1
      break
    fi
    sleep 0.2
  done
  if [ -n "$ready" ]; then
    curl -s --max-time 5 -H "Authorization: Bearer $token" "$url/v2/models/keystroke-fixed" >"$tmp/meta.json"
    python3 - "$tmp/meta.json" >"$tmp/infer.json" <<'PY' || die "factor: unexpected model metadata: $(cat "$tmp/meta.json")"
import json, sys
meta = json.load(open(sys.argv[1]))
dim = next(i for i in meta["inputs"] if i["name"] == "features")["shape"][-1]
rows = 2
data = [0.05 * ((i % 7) + 1) for i in range(rows * dim)]
print(json.dumps({"inputs": [{"name": "features", "shape": [rows, dim], "datatype": "FP32", "data": data}]}))
PY
    code="$(curl -s -o "$tmp/infer.out" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
      -H "Authorization: Bearer $token" \
      --data-binary "@$tmp/infer.json" "$url/v2/models/keystroke-fixed/infer" || true)"
    if [ "$code" != 200 ] || ! grep -q '"outputs"' "$tmp/infer.out"; then
      die "factor: POST /v2/models/keystroke-fixed/infer -> $code $(head -c 300 "$tmp/infer.out")"
    fi
    log "factor: POST /v2/models/keystroke-fixed/infer -> 200"
  else
    podman logs "$fctr" 2>&1 | tail -n 20 >&2 || true
    die "factor: /v2/health/ready is not 200 although a model artifact is in place"
  fi
  stop "$fctr"
}

log "timings: podman+base $((t_tools - t_start)) s, binary $((t_bin - t_tools)) s, image build $((t_build - t_bin)) s, start to healthy $t_ready_ms ms, total $((SECONDS - t_start)) s"
echo "container test passed ($profile binary, image $((size / 1024 / 1024)) MiB)"
