"""Equivalence check: the same OIP v2 infer requests to Tacit's factor service and to the
PyTorch peer must give the same outputs, and the same bad requests must be refused by
both (status 400).

    python equivalence.py --ours URL --peer URL --bodies FILE.jsonl [--bodies ...]
                          [--model gait] [--limit 200] [--tol 1e-3]

A line of FILE.jsonl is a JSON body, or the load generator's request line with binary
tensor data: `{"headers": {...}, "body_base64": "..."}`.

`URL` is a service's base (http://127.0.0.1:PORT). Every output value must agree within
`--tol` absolute or `--rtol` relative (outputs are float32: a raw score of -300 has a
float32 spacing of 3e-5). Prints one JSON summary line; exit status 1 on any mismatch.
Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import sys
import urllib.parse


class Client:
    """Keep-alive JSON client for one service."""

    def __init__(self, base: str):
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)

    def post(self, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
        self.conn.request("POST", path, body=body, headers=headers or {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, {"unparsed": data[:200].decode("utf-8", "replace")}


def bad_requests(body: dict) -> list[tuple[str, dict]]:
    """Variants of a good body that both services must refuse with 400."""
    feats, tmpl = body["inputs"]
    n, d = feats["shape"]
    t = json.loads(tmpl["data"][0])
    wrong_factor = dict(t, factor="keystroke-fixed")
    short = dict(t, detector=dict(t["detector"], centre=t["detector"]["centre"][:-1]))
    return [
        ("wrong width", {"inputs": [dict(feats, shape=[n, d + 1]), tmpl]}),
        ("too few values", {"inputs": [dict(feats, data=feats["data"][:-1]), tmpl]}),
        ("wrong datatype", {"inputs": [dict(feats, datatype="FP64"), tmpl]}),
        ("not a number", {"inputs": [dict(feats, data=["x"] * (n * d)), tmpl]}),
        ("overflows float32", {"inputs": [dict(feats, data=[1e39] * (n * d)), tmpl]}),
        ("missing features", {"inputs": [tmpl]}),
        ("unknown input", {"inputs": [feats, dict(tmpl, name="other")]}),
        ("template not JSON", {"inputs": [feats, dict(tmpl, data=["{"])]}),
        ("template of another factor", {"inputs": [feats, dict(tmpl, data=[json.dumps(wrong_factor)])]}),
        ("template of another width", {"inputs": [feats, dict(tmpl, data=[json.dumps(short)])]}),
        ("unknown output", {"inputs": [feats, tmpl], "outputs": [{"name": "embedding"}]}),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--bodies", action="append", required=True)
    ap.add_argument("--model", default="gait")
    ap.add_argument("--limit", type=int, default=200, help="bodies per file")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--rtol", type=float, default=1e-5)
    a = ap.parse_args()

    path = f"/v2/models/{a.model}/infer"
    ours, peer = Client(a.ours), Client(a.peer)
    failures: list[str] = []
    worst = {"llr": 0.0, "raw": 0.0}
    requests = values = 0
    fallback_templates = full_templates = binary = 0
    first = None
    for file in a.bodies:
        with open(file, encoding="utf-8") as f:
            lines = [l for l in f if l.strip()][: a.limit]
        for i, line in enumerate(lines):
            where = f"{file}:{i + 1}"
            parsed = json.loads(line)
            if "body_base64" in parsed:
                # The load generator's request line: binary tensor data and its headers.
                body, headers = base64.b64decode(parsed["body_base64"]), parsed["headers"]
                template_text = None
                binary += 1
            else:
                body, headers = line.encode(), None
                template_text = parsed["inputs"][1]["data"][0]
                first = first or parsed
            (s1, r1), (s2, r2) = ours.post(path, body, headers), peer.post(path, body, headers)
            requests += 1
            if s1 != 200 or s2 != 200:
                failures.append(f"{where}: status ours {s1} {r1}, peer {s2} {r2}")
                continue
            if r1.get("model_version") != r2.get("model_version"):
                failures.append(f"{where}: model_version {r1.get('model_version')} vs {r2.get('model_version')}")
            o1 = {o["name"]: o for o in r1["outputs"]}
            o2 = {o["name"]: o for o in r2["outputs"]}
            if sorted(o1) != ["llr", "raw"] or sorted(o2) != ["llr", "raw"]:
                failures.append(f"{where}: outputs {sorted(o1)} vs {sorted(o2)}")
                continue
            if template_text is not None:
                if json.loads(template_text).get("contrast") is None:
                    fallback_templates += 1
                else:
                    full_templates += 1
            for name in ("llr", "raw"):
                x, y = o1[name], o2[name]
                if x["shape"] != y["shape"] or len(x["data"]) != len(y["data"]):
                    failures.append(f"{where}: {name} shape {x['shape']} vs {y['shape']}")
                    continue
                for j, (u, v) in enumerate(zip(x["data"], y["data"])):
                    values += 1
                    diff = abs(u - v)
                    worst[name] = max(worst[name], diff)
                    if diff > a.tol and diff > a.rtol * abs(u):
                        failures.append(f"{where}: {name}[{j}] ours {u} peer {v} (diff {diff:.3g})")
    refused = 0
    if first is not None:
        for what, b in bad_requests(first):
            body = json.dumps(b).encode()
            (s1, r1), (s2, r2) = ours.post(path, body), peer.post(path, body)
            if s1 == 400 and s2 == 400 and "error" in r1 and "error" in r2:
                refused += 1
            else:
                failures.append(f"bad request '{what}': ours {s1} {r1}, peer {s2} {r2}")
    summary = {
        "requests": requests,
        "values": values,
        "requests_with_full_template": full_templates,
        "requests_with_fallback_template": fallback_templates,
        "requests_with_binary_tensors": binary,
        "max_abs_diff": worst,
        "bad_requests_refused_by_both": refused,
        "failures": len(failures),
        "ok": not failures and requests > 0 and values > 0,
    }
    for f in failures[:20]:
        print("MISMATCH", f, file=sys.stderr)
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
