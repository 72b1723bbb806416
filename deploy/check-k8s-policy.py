"""Checks what schema validation cannot see in rendered Kubernetes manifests: the
project's own rules (probes on the right endpoints, the restricted security context,
GPU scheduling, references between objects, and where factors are their own
Deployments a NetworkPolicy that lets only the gateway's pods reach them). Used by deploy/validate-k8s.sh.

Usage: python check-k8s-policy.py NAME=FILE... [--secrets FILE]
  NAME is the kustomization (base, overlays/cluster, ...); FILE its rendered YAML.
  --secrets FILE: the rendered secrets template; Secret references must name one of
  its Secrets and keys.
Prints one line per problem and exits 1 if there is any.
"""

import os
import sys

import yaml

GATEWAY_PROBES = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
FACTOR_PROBES = {"livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}
GPU = "nvidia.com/gpu"


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def pod_spec(obj):
    if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return obj["spec"]["template"]["spec"], obj["spec"]["template"]["metadata"].get("labels", {})
    if obj["kind"] == "CronJob":
        t = obj["spec"]["jobTemplate"]["spec"]["template"]
        return t["spec"], t["metadata"].get("labels", {})
    return None, None


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def selects(selector, labels):
    """Whether a label selector (matchLabels and matchExpressions) selects `labels`."""
    if not matches(selector.get("matchLabels", {}), labels):
        return False
    for e in selector.get("matchExpressions", []):
        have, values = labels.get(e["key"]), e.get("values", [])
        op = e["operator"]
        if (op == "In" and have not in values) or (op == "NotIn" and have in values):
            return False
        if (op == "Exists" and have is None) or (op == "DoesNotExist" and have is not None):
            return False
    return True


# The one peer besides the gateway: Prometheus in the namespace named monitoring, which
# scrapes the factors' /metrics (with the factor token) for the autoscalers.
SCRAPER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}

# The custom metrics prometheus-adapter serves (deploy/k8s/monitoring), and the gauge
# the factor services expose that they are made of.
ADAPTER_VALUES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s", "monitoring", "prometheus-adapter-values.yaml")
FACTOR_GAUGE = "tacit_http_requests_in_flight"


def adapter_metrics():
    """{custom metric name: series query} of the adapter rules."""
    with open(ADAPTER_VALUES, encoding="utf-8") as f:
        values = yaml.safe_load(f)
    return {r["name"]["as"]: r["seriesQuery"] for r in values["rules"]["custom"]}


def check_factor_autoscaling(hpas, deployments, bad):
    """Every factor's HPA scales on a per-pod custom metric the adapter rules make of
    the gauge the factors serve, not only on CPU."""
    served = adapter_metrics()
    for obj in hpas.values():
        target = deployments.get(obj["spec"]["scaleTargetRef"]["name"])
        if target is None or not pod_spec(target)[1].get("app.kubernetes.io/component", "").startswith("factor-"):
            continue
        pods = [m["pods"]["metric"]["name"] for m in obj["spec"].get("metrics", []) if m.get("type") == "Pods"]
        if not pods:
            bad(obj, "a factor scales on CPU alone: add the in-flight requests metric (deploy/k8s/monitoring)")
        for m in pods:
            if m not in served:
                bad(obj, f"Pods metric {m} is not served by the adapter rules in {ADAPTER_VALUES}")
            elif not served[m].startswith(FACTOR_GAUGE + "{"):
                bad(obj, f"Pods metric {m} is not made of the factors' gauge {FACTOR_GAUGE}")


def check_factor_isolation(deployments, policies, bad_build):
    """Every factor Deployment's pods are selected by an Ingress NetworkPolicy, and every
    policy that selects them lets in only pods that are the gateway's (a podSelector
    in the same namespace; no namespaceSelector, ipBlock or empty rule)."""
    pods = {n: pod_spec(d)[1] for n, d in deployments.items()}
    gateways = [lab for lab in pods.values() if lab.get("app.kubernetes.io/component") == "gateway"]
    for name, labels in pods.items():
        if not labels.get("app.kubernetes.io/component", "").startswith("factor-"):
            continue
        covering = [
            p
            for p in policies.values()
            if "Ingress" in p["spec"].get("policyTypes", ["Ingress"]) and selects(p["spec"].get("podSelector", {}), labels)
        ]
        if not covering:
            bad_build(f"Deployment/{name}: no NetworkPolicy limits who reaches this factor (only the gateway may)")
        for p in covering:
            where = f"NetworkPolicy/{p['metadata']['name']}"
            rules = p["spec"].get("ingress", [])
            for rule in rules:
                peers = rule.get("from")
                if not peers:
                    bad_build(f"{where}: an ingress rule without `from` lets everyone in")
                for peer in peers or []:
                    if peer == SCRAPER:
                        continue
                    if "namespaceSelector" in peer or "ipBlock" in peer or "podSelector" not in peer:
                        bad_build(f"{where}: a peer other than the gateway's pods: {peer}")
                        continue
                    if not gateways or not all(selects(peer["podSelector"], g) for g in gateways):
                        bad_build(f"{where}: its peer {peer['podSelector']} does not select the gateway's pods")
                    others = [n for n, lab in pods.items() if selects(peer["podSelector"], lab) and lab not in gateways]
                    if others:
                        bad_build(f"{where}: its peer also selects {sorted(others)}")


def check(name, docs, secrets, problems):
    def bad(obj, msg):
        problems.append(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {msg}")

    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    configmaps = by_kind.get("ConfigMap", {})
    pvcs = by_kind.get("PersistentVolumeClaim", {})
    deployments = by_kind.get("Deployment", {})
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    overlay = name.startswith("overlays/") or name == "training"

    for obj in docs:
        spec, labels = pod_spec(obj)
        if spec is None:
            continue
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
            bad(obj, "pod securityContext needs runAsNonRoot: true and a numeric runAsUser")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            bad(obj, "pod securityContext needs seccompProfile RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            bad(obj, "automountServiceAccountToken must be false")
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        wants_gpu = False
        for c in containers:
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                bad(obj, f"container {c['name']}: allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                bad(obj, f"container {c['name']}: readOnlyRootFilesystem must be true")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                bad(obj, f"container {c['name']}: capabilities must drop ALL")
            res = c.get("resources", {})
            if not {"cpu", "memory"} <= set(res.get("requests", {})) or "memory" not in res.get("limits", {}):
                bad(obj, f"container {c['name']}: needs cpu+memory requests and a memory limit")
            if GPU in res.get("limits", {}):
                wants_gpu = True
            if overlay and "/" not in c["image"].split(":")[0]:
                bad(obj, f"container {c['name']}: image {c['image']!r} is not mapped to a registry (images: in the kustomization)")
            for ref in c.get("envFrom", []):
                # The training Job is applied on its own, into the namespace the
                # cluster overlay made: its ConfigMaps are that build's.
                if "configMapRef" in ref and name != "training" and ref["configMapRef"]["name"] not in configmaps:
                    bad(obj, f"container {c['name']}: ConfigMap {ref['configMapRef']['name']} is not in the build")
                if "secretRef" in ref and secrets is not None and ref["secretRef"]["name"] not in secrets:
                    bad(obj, f"container {c['name']}: Secret {ref['secretRef']['name']} is not in the secrets template")
        for v in spec.get("volumes", []):
            if "persistentVolumeClaim" in v and overlay and name != "training" and v["persistentVolumeClaim"]["claimName"] not in pvcs:
                bad(obj, f"volume {v['name']}: PersistentVolumeClaim {v['persistentVolumeClaim']['claimName']} is not in the build")
            if "secret" in v and secrets is not None:
                sname = v["secret"]["secretName"]
                if sname not in secrets:
                    bad(obj, f"volume {v['name']}: Secret {sname} is not in the secrets template")
        tolerated = any(t.get("key") == GPU for t in spec.get("tolerations", []))
        selected = any(k.startswith("nvidia.com/") for k in spec.get("nodeSelector", {}))
        if wants_gpu and not (tolerated and selected):
            bad(obj, f"asks for {GPU} but lacks the GPU nodeSelector or toleration")
        if not wants_gpu and (tolerated or selected):
            bad(obj, "GPU nodeSelector/toleration without a GPU limit")
        if obj["kind"] != "Deployment":
            continue
        main = spec["containers"][0]
        args = main.get("args", [])
        component = labels.get("app.kubernetes.io/component", "")
        probes = GATEWAY_PROBES if component == "gateway" else FACTOR_PROBES
        for probe, path in probes.items():
            got = main.get(probe, {}).get("httpGet", {}).get("path")
            if got != path:
                bad(obj, f"{probe} must GET {path} (has {got})")
        # The built-in factors run the gateway's own binary with a role; a foreign-runtime
        # factor (the Python ones) has its own image and arguments.
        if component.startswith("factor-") and main["image"].startswith(("tacit-backend", "registry.example.invalid/tacit/tacit-backend")):
            want = ["serve", "--role", "factor:" + component[len("factor-"):]]
            if args != want:
                bad(obj, f"args {args} (want {want})")
        if component == "gateway" and args[:2] != ["serve", "--role"]:
            bad(obj, f"args {args} (want serve --role ...)")
        if obj["metadata"]["name"] in hpa_targets and "replicas" in obj["spec"]:
            bad(obj, "spec.replicas is set although a HorizontalPodAutoscaler scales it (apply would reset it)")

    for kind in ("HorizontalPodAutoscaler",):
        for obj in by_kind.get(kind, {}).values():
            if obj["spec"]["scaleTargetRef"]["name"] not in deployments:
                bad(obj, "scales a Deployment that is not in the build")
    check_factor_autoscaling(by_kind.get("HorizontalPodAutoscaler", {}), deployments, bad)
    factors = [d for d in deployments.values() if pod_spec(d)[1].get("app.kubernetes.io/component", "").startswith("factor-")]
    if factors:
        check_factor_isolation(
            deployments, by_kind.get("NetworkPolicy", {}), lambda msg: problems.append(f"{name}: {msg}")
        )
    pod_labels = [pod_spec(d)[1] for d in deployments.values()]
    for obj in by_kind.get("PodDisruptionBudget", {}).values():
        if not any(matches(obj["spec"]["selector"]["matchLabels"], lab) for lab in pod_labels):
            bad(obj, "selects no pod of the build")
    for obj in by_kind.get("Service", {}).values():
        sel = obj["spec"]["selector"]
        targets = [d for d in deployments.values() if matches(sel, pod_spec(d)[1])]
        if not targets:
            bad(obj, "selects no pod of the build")
        for port in obj["spec"]["ports"]:
            tp = port.get("targetPort")
            for d in targets:
                names = {p.get("name") for c in pod_spec(d)[0]["containers"] for p in c.get("ports", [])}
                if isinstance(tp, str) and tp not in names:
                    bad(obj, f"targetPort {tp} is not a port of {d['metadata']['name']}")


def main(argv):
    secrets = None
    pairs = []
    it = iter(argv)
    for a in it:
        if a == "--secrets":
            secrets = {d["metadata"]["name"]: d for d in load(next(it)) if d["kind"] == "Secret"}
        else:
            name, _, path = a.partition("=")
            pairs.append((name, path))
    problems = []
    for name, path in pairs:
        check(name, load(path), secrets, problems)
    for p in problems:
        print(p)
    print(f"policy: {len(pairs)} builds checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
