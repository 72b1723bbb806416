#!/usr/bin/env python3
"""Conformance test of a Tacit factor service against docs/factor-api.md.

Usage:
    factor_conformance.py BASE_URL MODEL [--objects-dir DIR | --s3-endpoint URL --bucket NAME | --no-jobs] [options]

    BASE_URL   e.g. http://127.0.0.1:8090 (a path prefix is allowed)
    MODEL      the model (= factor) name, e.g. gait, keystroke-fixed, py-keystroke

The OIP v2 side is driven by an off-the-shelf client, NVIDIA's `tritonclient[http]`
(JSON tensors, and binary tensors where the service lists the extension); the error
cases and the job API, which that client cannot express, are sent as raw HTTP with the
standard library. Only the
contract is tested, never one implementation's choices: the feature dimension comes
from the model metadata, and values are drawn inside a range that every factor schema
accepts (--low/--high; --factor names the records' factor for the job API).

The job API needs feature files the factor can read: with --objects-dir DIR (the
directory root of the factor's local object store) the test writes payload files
(shared/protocol/PROTOCOL.md encoding) under `features/conf<random>-.../...` there and
deletes them afterwards; with --s3-endpoint URL --bucket NAME it writes them to that
S3-compatible server instead (unsigned PUT/DELETE, as moto accepts). With --bucket NAME
the jobs name their files `s3://NAME/KEY` (the seed's form), and names of other buckets
and schemes must be refused. Without a place to write, the file-based job checks are
reported skipped. The jobs: `/enrol` (a template from files), `/input` (scores),
`/train` (a population model trained on the people of the files, gated and registered;
sent with "promote": false so that the model in service stays; --train-steps).
With --at-rest-key FILE (the factor's at-rest key: 32 bytes or 64 hex characters) the
files are encrypted at rest as the gateway writes them (backend/src/store/at_rest.rs:
b"TAR1" | SHA-256(key)[:8] | nonce | AES-256-GCM with the object key as associated
data); that needs the `cryptography` package.

With --token-file FILE (the factor bearer token the gateway sends, docs/factor-api.md
"Authentication") every call carries `Authorization: Bearer TOKEN`, and the test also
checks that the factor refuses calls without it or with a wrong one (401 with
`"code": "unauthorized"`) while its health probes answer without it.

Progress goes to stderr; the last line on stdout is "N passed, M failed" (", K
skipped" when some were skipped). Exit status 0 only when nothing failed.
Needs: numpy, tritonclient[http].
"""

import argparse
import json
import math
import os
import secrets
import shutil
import struct
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

FACTOR_TAGS = {"gait": 1, "keystroke-fixed": 2, "keystroke-free": 3}
MAX_ROWS = 4096


class Results:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print(f"  ok   {name}", file=sys.stderr)
        else:
            self.failed += 1
            print(f"  FAIL {name} {detail}".rstrip(), file=sys.stderr)
        return bool(cond)

    def skip(self, name, why):
        self.skipped += 1
        print(f"  skip {name}: {why}", file=sys.stderr)

    def crash(self, section):
        self.failed += 1
        print(f"  FAIL {section}: unexpected exception", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)


# -- raw HTTP --------------------------------------------------------------------------


class Http:
    def __init__(self, base, token=None):
        self.base = base.rstrip("/")
        self.token = token

    def request(self, method, path, body=None, raw=None, timeout=60, token=True, headers=None):
        """(status, parsed JSON or None, raw bytes). body: JSON-encoded here; raw: bytes.
        token: True sends the factor token (when one is set), False none, a string that
        string instead. headers: more request headers."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        bearer = self.token if token is True else (token or None)
        if bearer:
            req.add_header("Authorization", f"Bearer {bearer}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, content = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, content = e.code, e.read()
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = None
        return status, parsed, content


class WithHeaders:
    """A tritonclient client whose every call sends `headers` (the bearer token)."""

    def __init__(self, client, headers):
        self._client = client
        self._headers = headers

    def __getattr__(self, name):
        f = getattr(self._client, name)
        if not callable(f) or not self._headers:
            return f

        def call(*args, **kwargs):
            # A copy each call: tritonclient adds Inference-Header-Content-Length to the
            # dict it is given, which must not reach the next call.
            kwargs.setdefault("headers", dict(self._headers))
            return f(*args, **kwargs)

        return call


def read_token(path):
    if path is None:
        return None
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def is_error_body(parsed):
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), str) and parsed["error"] != ""


# -- payload encoding (shared/protocol/PROTOCOL.md) ------------------------------------------------


def seal_at_rest(key_file, object_key, data):
    """`data` as the gateway stores it with encryption at rest on (unchanged without a key)."""
    if key_file is None:
        return data
    import hashlib

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with open(key_file, "rb") as f:
        raw = f.read(200)
    key = raw if len(raw) == 32 else bytes.fromhex(raw.decode("ascii").strip())
    nonce = secrets.token_bytes(12)
    return b"TAR1" + hashlib.sha256(key).digest()[:8] + nonce + AESGCM(key).encrypt(nonce, data, object_key.encode())


def encode_payload(records, start_ms=None):
    """records: list of (factor tag, context bytes or None, float32 values); windows 6 s
    apart from start_ms (default: just before now)."""
    out = bytearray([1]) + struct.pack(">H", len(records))
    if start_ms is None:
        start_ms = int(time.time() * 1000) - 6000 * len(records)
    for i, (tag, ctx, values) in enumerate(records):
        out += struct.pack(">BHQI", tag, 1, start_ms + 6000 * i, 5000)
        out += ctx if ctx is not None else bytes(16)
        out += struct.pack(f">H{len(values)}f", len(values), *[float(v) for v in values])
    return bytes(out)


def other_factor_record(tag):
    """A valid record of a factor other than `tag` (the factor must skip it)."""
    if tag == FACTOR_TAGS["gait"]:
        return (FACTOR_TAGS["keystroke-fixed"], b"conformance-ctx!", np.full(4, 0.1, np.float32))
    return (FACTOR_TAGS["gait"], None, np.full(50, 0.1, np.float32))


# -- the test -----------------------------------------------------------------------------


class Conformance:
    def __init__(self, args):
        self.args = args
        self.r = Results()
        u = urllib.parse.urlsplit(args.base_url)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise SystemExit(f"BASE_URL must be http(s)://host:port[/prefix], got {args.base_url!r}")
        self.token = read_token(args.token_file)
        self.http = Http(args.base_url, self.token)
        self.client = WithHeaders(
            httpclient.InferenceServerClient(url=u.netloc + u.path.rstrip("/"), ssl=u.scheme == "https", network_timeout=120.0),
            {"Authorization": f"Bearer {self.token}"} if self.token else None,
        )
        self.model = args.model
        self.rng = np.random.default_rng(args.seed)
        self.dim = None
        self.versions = []
        self.extensions = []
        self.written = []

    # vectors inside [low, high]: a "user" is a centre, their vectors small deviations
    def user(self):
        a = self.args
        return self.rng.uniform(a.low + 0.2 * (a.high - a.low), a.high - 0.2 * (a.high - a.low), self.dim)

    def draw(self, centre, n):
        a = self.args
        x = centre + self.rng.normal(0.0, 0.03 * (a.high - a.low), (n, self.dim))
        return np.clip(x, a.low, a.high).astype(np.float32)

    def infer_raw(self, inputs, model=None, outputs=None, extra=None):
        body = {"inputs": inputs}
        if outputs is not None:
            body["outputs"] = [{"name": o} for o in outputs]
        if extra:
            body.update(extra)
        return self.http.request("POST", f"/v2/models/{model or self.model}/infer", body)

    def features_input(self, x, shape=None, datatype="FP32", data=None):
        return {
            "name": "features",
            "shape": list(shape if shape is not None else x.shape),
            "datatype": datatype,
            "data": data if data is not None else [float(v) for v in np.asarray(x).reshape(-1)],
        }

    @staticmethod
    def template_input(template_text):
        return {"name": "template", "shape": [1], "datatype": "BYTES", "data": [template_text]}

    def tc_inputs(self, x, template=None):
        fi = httpclient.InferInput("features", list(x.shape), "FP32")
        fi.set_data_from_numpy(np.ascontiguousarray(x, dtype=np.float32), binary_data=False)
        ins = [fi]
        if template is not None:
            ti = httpclient.InferInput("template", [1], "BYTES")
            ti.set_data_from_numpy(np.array([json.dumps(template).encode()], dtype=np.object_), binary_data=False)
            ins.append(ti)
        return ins

    @staticmethod
    def tc_outputs(names):
        return [httpclient.InferRequestedOutput(n, binary_data=False) for n in names]

    # -- sections -----------------------------------------------------------------------

    def health_and_metadata(self):
        r = self.r
        r.check("server live (GET /v2/health/live)", self.client.is_server_live())
        r.check("server ready (GET /v2/health/ready)", self.client.is_server_ready())
        md = self.client.get_server_metadata()
        r.check(
            "server metadata (GET /v2): name, version, extensions",
            isinstance(md, dict)
            and isinstance(md.get("name"), str)
            and isinstance(md.get("version"), str)
            and isinstance(md.get("extensions"), list),
            md,
        )
        mm = self.client.get_model_metadata(self.model)
        ok = isinstance(mm, dict) and mm.get("name") == self.model
        r.check("model metadata: name", ok, mm)
        versions = mm.get("versions") if isinstance(mm, dict) else None
        r.check(
            "model metadata: versions is a non-empty list of strings",
            isinstance(versions, list) and versions and all(isinstance(v, str) for v in versions),
            versions,
        )
        self.versions = versions if isinstance(versions, list) else []
        self.extensions = md.get("extensions", []) if isinstance(md, dict) else []
        r.check("model metadata: platform", isinstance(mm.get("platform"), str), mm.get("platform"))
        ins = {i.get("name"): i for i in mm.get("inputs", []) if isinstance(i, dict)}
        f = ins.get("features", {})
        shape = f.get("shape")
        ok = (
            f.get("datatype") == "FP32"
            and isinstance(shape, list)
            and len(shape) == 2
            and shape[0] == -1
            and isinstance(shape[1], int)
            and shape[1] > 0
        )
        r.check("model metadata: input features FP32 [-1, dim]", ok, f)
        if ok:
            self.dim = shape[1]
        t = ins.get("template", {})
        r.check("model metadata: input template BYTES", t.get("datatype") == "BYTES", t)
        outs = {o.get("name"): o for o in mm.get("outputs", []) if isinstance(o, dict)}
        r.check(
            "model metadata: outputs llr, raw, embedding (FP32)",
            all(outs.get(n, {}).get("datatype") == "FP32" for n in ("llr", "raw", "embedding")),
            list(outs),
        )
        r.check("model ready (GET /v2/models/{name}/ready)", self.client.is_model_ready(self.model))
        unknown = "no-such-model-" + secrets.token_hex(4)
        st, body, _ = self.http.request("GET", f"/v2/models/{unknown}/ready")
        r.check("unknown model ready -> 404", st == 404, f"got {st}")
        st, body, _ = self.http.request("GET", f"/v2/models/{unknown}")
        r.check("unknown model metadata -> 404 {error}", st == 404 and is_error_body(body), f"got {st} {body}")
        try:
            self.client.get_model_metadata(unknown)
            r.check("tritonclient: unknown model metadata raises", False, "no exception")
        except InferenceServerException as e:
            r.check("tritonclient: unknown model metadata raises (status 404)", e.status() == "404", e.status())

    def infer_without_template(self):
        r = self.r
        x = self.draw(self.user(), 5)
        res = self.client.infer(self.model, self.tc_inputs(x))
        e = res.as_numpy("embedding")
        ok = e is not None and e.ndim == 2 and e.shape[0] == 5 and e.shape[1] > 0
        r.check("infer without template: embedding [n, k]", ok, None if e is None else e.shape)
        if ok:
            norms = np.linalg.norm(e.astype(np.float64), axis=1)
            r.check(
                "infer without template: embedding finite and L2-normalised",
                np.isfinite(e).all() and np.allclose(norms, 1.0, atol=1e-3),
                norms,
            )
        res2 = self.client.infer(
            self.model, self.tc_inputs(x), outputs=self.tc_outputs(["embedding"]), request_id="conformance-1"
        )
        resp = res2.get_response()
        r.check(
            "infer response: model_name, model_version, id echoed",
            resp.get("model_name") == self.model
            and isinstance(resp.get("model_version"), str)
            and (not self.versions or resp.get("model_version") in self.versions)
            and resp.get("id") == "conformance-1",
            {k: resp.get(k) for k in ("model_name", "model_version", "id")},
        )
        outs = resp.get("outputs", [])
        r.check(
            "infer with outputs [embedding]: exactly that output, FP32",
            [o.get("name") for o in outs] == ["embedding"] and outs[0].get("datatype") == "FP32",
            [o.get("name") for o in outs],
        )
        e2 = res2.as_numpy("embedding")
        r.check(
            "infer is deterministic (same embedding twice)",
            e is not None and e2 is not None and e.shape == e2.shape and np.allclose(e, e2, atol=1e-6),
        )
        # nested data is accepted as well as flat data
        st, body, _ = self.infer_raw([self.features_input(x, data=x.astype(float).tolist())], outputs=["embedding"])
        r.check("infer accepts nested data lists", st == 200, f"got {st} {body}")

    def enrol_and_score(self):
        r = self.r
        a = self.args
        centre = self.user()
        self.genuine_centre = centre
        enrol = self.draw(centre, a.enrol_n)
        st, body, _ = self.http.request("POST", "/output", {"op": "enrol", "features": enrol.astype(float).tolist()})
        out = body.get("output") if isinstance(body, dict) else None
        ok = st == 200 and isinstance(out, dict) and isinstance(out.get("template"), dict)
        r.check("POST /output enrol -> 200 {output: {template: {...}}}", ok, f"got {st} {str(body)[:200]}")
        if not ok:
            return None
        r.check("enrol output: samples = vectors sent", out.get("samples") == a.enrol_n, out.get("samples"))
        template = out["template"]
        self.template = template

        test = self.draw(centre, 8)
        res = self.client.infer(self.model, self.tc_inputs(test, template), outputs=self.tc_outputs(["llr", "raw"]))
        llr, raw = res.as_numpy("llr"), res.as_numpy("raw")
        ok = llr is not None and raw is not None and llr.shape == (8,) and raw.shape == (8,)
        r.check("infer with template: llr [n] and raw [n]", ok, None if llr is None else (llr.shape, getattr(raw, "shape", None)))
        if not ok:
            return template
        r.check("infer with template: finite FP32", llr.dtype == np.float32 and np.isfinite(llr).all() and np.isfinite(raw).all())
        res_all = self.client.infer(self.model, self.tc_inputs(test, template), outputs=self.tc_outputs(["llr", "raw"]))
        res_default = self.client.infer(self.model, self.tc_inputs(test, template))
        r.check(
            "infer with template, no outputs named: llr and raw",
            res_default.as_numpy("llr") is not None and res_default.as_numpy("raw") is not None,
        )
        r.check("infer with template is deterministic", np.allclose(res_all.as_numpy("llr"), llr, atol=1e-5))
        one = self.client.infer(self.model, self.tc_inputs(test, template), outputs=self.tc_outputs(["llr"]))
        names = [o.get("name") for o in one.get_response().get("outputs", [])]
        r.check("infer with outputs [llr]: only llr", names == ["llr"], names)

        st, body, _ = self.http.request(
            "POST", "/output", {"op": "score", "features": test.astype(float).tolist(), "template": template}
        )
        out = body.get("output") if isinstance(body, dict) else None
        ok = st == 200 and isinstance(out, dict) and isinstance(out.get("scores"), list) and len(out["scores"]) == 8
        r.check("POST /output score -> 200 {output: {scores: [n]}}", ok, f"got {st} {str(body)[:200]}")
        if ok:
            s = np.asarray(out["scores"], dtype=np.float64)
            r.check(
                "/output score: scores = infer llr",
                np.allclose(s, llr.astype(np.float64), rtol=1e-4, atol=1e-3),
                f"{s[:3]} vs {llr[:3]}",
            )
            r.check(
                "/output score: mean_llr = mean(scores), samples = n",
                isinstance(out.get("mean_llr"), (int, float))
                and math.isclose(out["mean_llr"], float(np.mean(s)), rel_tol=1e-6, abs_tol=1e-6)
                and out.get("samples") == 8,
                {k: out.get(k) for k in ("mean_llr", "samples")},
            )
        if a.expect_separation:
            impostor = self.draw(self.user(), 8)
            res_i = self.client.infer(self.model, self.tc_inputs(impostor, template), outputs=self.tc_outputs(["llr"]))
            gi = float(np.mean(llr))
            ii = float(np.mean(res_i.as_numpy("llr")))
            r.check("separation: genuine mean llr > impostor mean llr", gi > ii, f"genuine {gi:.3f} impostor {ii:.3f}")
        return template

    def binary_tensors(self, template):
        """The binary tensor data extension, where the service lists it: tritonclient's
        defaults (binary inputs and outputs) give exactly the JSON answers, and bodies
        whose binary part does not match what they declare are refused."""
        r = self.r
        if "binary_tensor_data" not in self.extensions:
            r.skip("binary tensor data", "the service does not list the binary_tensor_data extension")
            return
        if template is None:
            r.skip("binary tensor data", "no template")
            return
        test = self.draw(self.genuine_centre, 8)
        want = self.client.infer(self.model, self.tc_inputs(test, template), outputs=self.tc_outputs(["llr", "raw"]))
        fi = httpclient.InferInput("features", list(test.shape), "FP32")
        fi.set_data_from_numpy(np.ascontiguousarray(test, dtype=np.float32), binary_data=True)
        ti = httpclient.InferInput("template", [1], "BYTES")
        ti.set_data_from_numpy(np.array([json.dumps(template).encode()], dtype=np.object_), binary_data=True)
        binary_out = [httpclient.InferRequestedOutput("llr"), httpclient.InferRequestedOutput("raw")]
        got = self.client.infer(self.model, [fi, ti], outputs=binary_out)
        outs = {o.get("name"): o for o in got.get_response().get("outputs", [])}
        r.check(
            "binary inputs and outputs (tritonclient's defaults): outputs carry binary_data_size, no data",
            all("data" not in outs.get(n, {}) and outs.get(n, {}).get("parameters", {}).get("binary_data_size") == 32 for n in ("llr", "raw")),
            outs,
        )
        for n in ("llr", "raw"):
            a, b = want.as_numpy(n), got.as_numpy(n)
            r.check(f"binary tensors: {n} equal to the JSON answer's", a is not None and b is not None and np.array_equal(a, b), (a, b))
        mixed = self.client.infer(self.model, [fi, ti], outputs=self.tc_outputs(["llr"]))
        r.check("binary inputs, JSON outputs: the same llr", np.array_equal(mixed.as_numpy("llr"), want.as_numpy("llr")))
        every = self.client.infer(self.model, self.tc_inputs(test, template))
        r.check("JSON inputs, no outputs named (binary_data_output): the same llr", np.array_equal(every.as_numpy("llr"), want.as_numpy("llr")))

        # Hand-made bodies: the JSON header, then the features' bytes.
        data = np.ascontiguousarray(test, dtype=np.float32).tobytes()
        path = f"/v2/models/{self.model}/infer"

        def send(size, payload, header_length=None, extra_input=None):
            inputs = [{"name": "features", "shape": list(test.shape), "datatype": "FP32", "parameters": {"binary_data_size": size}}]
            if extra_input:
                inputs[0].update(extra_input)
            head = json.dumps({"inputs": inputs, "outputs": [{"name": "embedding"}]}).encode()
            n = len(head) if header_length is None else header_length
            hdr = {} if n == "absent" else {"Inference-Header-Content-Length": str(n)}
            return self.http.request("POST", path, raw=head + payload, headers=hdr)

        st, body, _ = send(len(data), data)
        r.check("hand-made binary body -> 200", st == 200, f"got {st} {str(body)[:200]}")

        # An output's own binary_data overrides the request's binary_data_output.
        feats = self.features_input(test)
        st, _, content = self.http.request("POST", path, {
            "inputs": [feats, self.template_input(json.dumps(template))],
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "llr", "parameters": {"binary_data": False}}, {"name": "raw"}],
        })
        ok, detail = False, f"status {st}"
        if st == 200:
            head, end = json.JSONDecoder().raw_decode(content.decode("latin-1"))
            outs = {o.get("name"): o for o in head.get("outputs", [])}
            ok = ("data" in outs.get("llr", {}) and "data" not in outs.get("raw", {})
                  and outs.get("raw", {}).get("parameters", {}).get("binary_data_size") == 4 * len(test)
                  and len(content) - end == 4 * len(test))
            detail = outs
        r.check("an output's binary_data false overrides binary_data_output", ok, detail)
        cases = [
            ("binary_data_size beyond the body", send(len(data) + 4, data)),
            ("bytes that no input declares", send(len(data), data + b"\0\0\0\0")),
            ("binary_data_size not a whole number of FP32 values", send(len(data) - 2, data[:-2])),
            ("binary_data_size without the header", send(len(data), b"", header_length="absent")),
            ("header length beyond the body", send(len(data), data, header_length=10**9)),
            ("header length not a number", send(len(data), data, header_length="x12")),
            ("both data and binary_data_size", send(len(data), data, extra_input={"data": [1.0]})),
            ("binary_data_size negative", send(-4, data)),
            ("features given twice", self.http.request("POST", path, {"inputs": [feats, feats]})),
            ("an output requested twice", self.http.request(
                "POST", path, {"inputs": [feats], "outputs": [{"name": "embedding"}, {"name": "embedding"}]})),
        ]
        for name, (st, body, _) in cases:
            code = body.get("code") if isinstance(body, dict) else None
            r.check(f"binary tensors: {name} -> 400 invalid_request", st == 400 and code == "invalid_request", f"got {st} {str(body)[:160]}")

    def bad_requests(self, template):
        r = self.r
        dim = self.dim
        x = self.draw(self.user(), 3)

        def expect(name, status, body, want=400):
            r.check(f"{name} -> {want} {{error}}", status == want and is_error_body(body), f"got {status} {str(body)[:160]}")

        st, b, _ = self.infer_raw([self.features_input(x, shape=[3, dim + 1], data=[0.1] * (3 * (dim + 1)))])
        expect("wrong shape [n, dim+1]", st, b)
        st, b, _ = self.infer_raw([self.features_input(x, shape=[3 * dim])])
        expect("wrong rank [n*dim]", st, b)
        st, b, _ = self.infer_raw([self.features_input(x, shape=[4, dim])])
        expect("shape/data mismatch", st, b)
        st, b, _ = self.infer_raw([self.features_input(x, shape=[0, dim], data=[])])
        expect("zero rows", st, b)
        st, b, _ = self.infer_raw([self.features_input(x, datatype="FP64")])
        expect("datatype FP64", st, b)
        st, b, _ = self.infer_raw([self.features_input(x, datatype="INT32", data=[0] * (3 * dim))])
        expect("datatype INT32", st, b)
        data = [0.1] * (3 * dim)
        data[1] = "0.1"
        st, b, _ = self.infer_raw([self.features_input(x, data=data)])
        expect("a string in FP32 data", st, b)
        data = [0.1] * (3 * dim)
        data[2] = 1e39
        st, b, _ = self.infer_raw([self.features_input(x, data=data)])
        expect("a value beyond the FP32 range (1e39)", st, b)
        raw_nan = json.dumps({"inputs": [self.features_input(x, data=[0.1] * (3 * dim))]})
        raw_nan = raw_nan.replace("[0.1,", "[NaN,", 1)
        st, b, _ = self.http.request("POST", f"/v2/models/{self.model}/infer", raw=raw_nan.encode())
        expect("NaN in the data", st, b)
        xn = x.copy()
        xn[0, 0] = np.nan
        try:
            self.client.infer(self.model, self.tc_inputs(xn))
            r.check("tritonclient: NaN features raise", False, "no exception")
        except InferenceServerException as e:
            r.check("tritonclient: NaN features -> 400", e.status() == "400", f"{e.status()} {e.message()}")
        st, b, _ = self.infer_raw([self.features_input(self.draw(self.user(), MAX_ROWS + 1))])
        expect(f"{MAX_ROWS + 1} rows", st, b, want=413)
        st, b, _ = self.infer_raw([self.template_input(json.dumps(template if template is not None else {}))])
        expect("no features input", st, b)
        st, b, _ = self.infer_raw([self.features_input(x)], model="no-such-model-" + secrets.token_hex(4))
        expect("unknown model", st, b, want=404)
        st, b, _ = self.infer_raw([self.features_input(x)], outputs=["no_such_output"])
        expect("unknown output", st, b)
        try:
            self.client.infer(self.model, self.tc_inputs(x), outputs=self.tc_outputs(["no_such_output"]))
            r.check("tritonclient: unknown output raises", False, "no exception")
        except InferenceServerException as e:
            r.check("tritonclient: unknown output -> 400", e.status() == "400", f"{e.status()} {e.message()}")
        st, b, _ = self.infer_raw([self.features_input(x), self.template_input("this is not json")])
        expect("template that is not JSON", st, b)
        st, b, _ = self.infer_raw([self.features_input(x), self.template_input(json.dumps({"not": "a template"}))])
        expect("template of the wrong structure", st, b)
        st, b, _ = self.infer_raw([self.features_input(x), {"name": "template", "shape": [1], "datatype": "FP32", "data": [1.0]}])
        expect("template with datatype FP32", st, b)
        st, b, _ = self.http.request("POST", f"/v2/models/{self.model}/infer", raw=b'{"inputs": [')
        expect("a body that is not JSON", st, b)
        st, b, _ = self.http.request("POST", f"/v2/models/{self.model}/infer", body=[1, 2, 3])
        expect("a body that is not an object", st, b)
        st, b, _ = self.http.request("POST", "/output", {"op": "nope", "features": x.astype(float).tolist()})
        expect("/output with an unknown op", st, b)
        st, b, _ = self.http.request("POST", "/output", {"op": "score", "features": x.astype(float).tolist(), "template": {"not": "a template"}})
        expect("/output score with a bad template", st, b)
        if not self.args.no_jobs:
            st, b, _ = self.http.request("POST", "/train", {"files": "not-a-list"})
            expect("/train with files not a list", st, b)

    def poll(self, job_id):
        deadline = time.monotonic() + self.args.job_timeout
        while True:
            st, body, _ = self.http.request("GET", "/status?taskID=" + urllib.parse.quote(job_id))
            if st != 200 or not isinstance(body, dict) or body.get("status") != "running":
                return st, body
            if time.monotonic() > deadline:
                return st, {"status": "running", "note": f"still running after {self.args.job_timeout} s"}
            time.sleep(0.2)

    def submit(self, path, body):
        st, b, _ = self.http.request("POST", path, body)
        ok = st == 202 and isinstance(b, dict) and isinstance(b.get("jobId"), str) and b["jobId"]
        self.r.check(f"POST {path} -> 202 {{jobId}}", ok, f"got {st} {str(b)[:200]}")
        return b["jobId"] if ok else None

    # -- feature files -------------------------------------------------------------------

    def can_write(self):
        return self.args.objects_dir is not None or self.args.s3_endpoint is not None

    def put_object(self, key, data):
        a = self.args
        data = seal_at_rest(a.at_rest_key, key, data)
        if a.s3_endpoint is not None:
            # An explicit type: urllib's default (a form) makes moto parse the body.
            req = urllib.request.Request(
                f"{a.s3_endpoint.rstrip('/')}/{a.bucket}/{key}",
                data=data,
                method="PUT",
                headers={"Content-Type": "application/octet-stream"},
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                if r.status // 100 != 2:
                    raise RuntimeError(f"PUT {key}: {r.status}")
        else:
            path = os.path.join(a.objects_dir, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        self.written.append(key)

    def delete_objects(self):
        a = self.args
        for key in self.written:
            if a.s3_endpoint is not None:
                try:
                    req = urllib.request.Request(f"{a.s3_endpoint.rstrip('/')}/{a.bucket}/{key}", method="DELETE")
                    urllib.request.urlopen(req, timeout=30).close()
                except urllib.error.URLError:
                    pass
            else:
                try:
                    os.unlink(os.path.join(a.objects_dir, key))
                except OSError:
                    pass
        self.written = []

    def name(self, key):
        """How a job names a file: s3://BUCKET/KEY with --bucket, else the store key."""
        return f"s3://{self.args.bucket}/{key}" if self.args.bucket else key

    def write_person(self, user, vectors, uploads, first_seq=1):
        """Store keys of `vectors` of a person, in `uploads` files (sessions 2 h apart),
        each with a record of another factor the factor must skip."""
        a = self.args
        tag = FACTOR_TAGS[a.factor]
        ctx = b"conformance-ctx!" if a.factor == "keystroke-fixed" else None
        device = secrets.token_hex(16)
        t0 = int(time.time() * 1000) - 86_400_000
        keys = []
        for i, chunk in enumerate(np.array_split(vectors, max(1, min(uploads, len(vectors))))):
            recs = [(tag, ctx, v) for v in chunk] + [other_factor_record(tag)]
            key = f"features/{user}/{device}/{first_seq + i:020d}-{secrets.token_hex(16)}.bin"
            self.put_object(key, encode_payload(recs, t0 + i * 7_200_000))
            keys.append(key)
        return keys

    def job_paths_refused(self):
        """Files outside the service's bucket or the features prefix are a 400, on every
        job route."""
        r = self.r
        key = f"features/conf{secrets.token_hex(4)}/{secrets.token_hex(16)}/{1:020d}-{secrets.token_hex(16)}.bin"
        other = "other-bucket-" + secrets.token_hex(4)
        for path, extra in (("/enrol", {}), ("/input", {"template": self.template or {}}), ("/train", {"promote": False})):
            for bad, what in (
                (f"s3://{other}/{key}", "another bucket"),
                (f"gs://{self.args.bucket or 'b'}/{key}", "another scheme"),
                ("features/x/../../models/m.tcm", "a path escape"),
                (f"s3://{self.args.bucket or 'b'}/features/../x", "an escape in an s3 path"),
            ):
                st, b, _ = self.http.request("POST", path, dict(extra, files=[bad]))
                r.check(f"{path} with {what} -> 400 {{error}}", st == 400 and is_error_body(b), f"got {st} {str(b)[:160]}")

    def jobs(self):
        r = self.r
        a = self.args
        if a.no_jobs:
            r.skip("job API", "--no-jobs: this factor serves OIP v2 and /output only")
            return
        st, b, _ = self.http.request("GET", "/status?taskID=" + secrets.token_hex(16))
        r.check("GET /status with an unknown taskID -> 404 {error}", st == 404 and is_error_body(b), f"got {st} {b}")
        self.job_paths_refused()
        if not self.can_write():
            for name in ("/enrol round trip", "/input round trip", "job on a missing file", "/train"):
                r.skip(name, "no --objects-dir or --s3-endpoint")
            return
        user = f"conf{secrets.token_hex(6)}"
        try:
            centre = self.user()
            enrol = self.draw(centre, a.enrol_n)
            test = self.draw(centre, 6)
            enrol_keys = self.write_person(user, enrol, 4, 1)
            test_keys = self.write_person(user, test, 2, 100)
            job = self.submit("/enrol", {"files": [self.name(k) for k in enrol_keys]})
            template = None
            if job:
                st, body = self.poll(job)
                res = body.get("result") if isinstance(body, dict) else None
                ok = st == 200 and body.get("status") == "completed" and isinstance(res, dict)
                r.check("/enrol job completes", ok, f"got {st} {str(body)[:300]}")
                if ok:
                    template = res.get("template")
                    r.check("/enrol result: template object", isinstance(template, dict), str(res)[:200])
                    r.check(
                        "/enrol result: samples = the factor's vectors in the files (other factors skipped)",
                        res.get("samples") == a.enrol_n,
                        f"{res.get('samples')} != {a.enrol_n}",
                    )
                    st2, body2 = self.poll(job)
                    r.check("/status of a finished job answers again", st2 == 200 and body2 == body)
            if isinstance(template, dict):
                job = self.submit("/input", {"files": [self.name(k) for k in test_keys], "template": template})
                if job:
                    st, body = self.poll(job)
                    res = body.get("result") if isinstance(body, dict) else None
                    ok = st == 200 and body.get("status") == "completed" and isinstance(res, dict)
                    r.check("/input job completes", ok, f"got {st} {str(body)[:300]}")
                    if ok:
                        scores = res.get("scores")
                        ok = isinstance(scores, list) and len(scores) == len(test) and res.get("samples") == len(test)
                        r.check("/input result: scores [n], samples", ok, str(res)[:200])
                        if ok:
                            st3, b3, _ = self.http.request(
                                "POST", "/output", {"op": "score", "features": test.astype(float).tolist(), "template": template}
                            )
                            sync = (b3 or {}).get("output", {}).get("scores") if isinstance(b3, dict) else None
                            r.check(
                                "/input scores = /output score on the same vectors",
                                st3 == 200 and isinstance(sync, list) and np.allclose(scores, sync, rtol=1e-4, atol=1e-4),
                                f"{scores[:3]} vs {None if sync is None else sync[:3]}",
                            )
                            r.check(
                                "/input result: mean_llr = mean(scores)",
                                isinstance(res.get("mean_llr"), (int, float))
                                and math.isclose(res["mean_llr"], float(np.mean(scores)), rel_tol=1e-6, abs_tol=1e-6),
                            )
            else:
                r.skip("/input round trip", "no template from /enrol")
            missing = f"features/{user}/{secrets.token_hex(16)}/{99999:020d}-{secrets.token_hex(16)}.bin"
            st, b, _ = self.http.request("POST", "/enrol", {"files": [self.name(missing)]})
            if st == 202 and isinstance(b, dict) and isinstance(b.get("jobId"), str):
                st, body = self.poll(b["jobId"])
                r.check(
                    "job on a missing file -> failed {error}",
                    st == 200 and isinstance(body, dict) and body.get("status") == "failed" and isinstance(body.get("error"), str),
                    f"got {st} {body}",
                )
            else:
                r.check("job on a missing file -> 4xx {error}", 400 <= st < 500 and is_error_body(b), f"got {st} {b}")
            self.train(user)
        finally:
            self.delete_objects()

    def train(self, run):
        """`/train`: a population model from the people of the files, gated, registered
        and (promote false) not put in service."""
        r = self.r
        a = self.args
        people = a.train_people
        files = []
        for p in range(people):
            files += self.write_person(f"{run}-p{p}", self.draw(self.user(), 40), 4)
        names = [self.name(k) for k in files]
        st, b, _ = self.http.request("POST", "/train", {"files": names, "promote": False, "gate_share": 0.9})
        r.check("/train with gate_share 0.9 -> 400 {error}", st == 400 and is_error_body(b), f"got {st} {str(b)[:160]}")
        before = self.client.get_model_metadata(self.model).get("versions")
        job = self.submit("/train", {"files": names, "promote": False, "steps": a.train_steps, "seed": 3})
        if not job:
            return
        st, body = self.poll(job)
        res = body.get("result") if isinstance(body, dict) else None
        ok = st == 200 and isinstance(body, dict) and body.get("status") == "completed" and isinstance(res, dict)
        r.check("/train job completes", ok, f"got {st} {str(body)[:400]}")
        if not ok:
            return
        r.check(
            "/train result: version (int >= 1), model_version (str), promoted false",
            isinstance(res.get("version"), int) and res["version"] >= 1
            and isinstance(res.get("model_version"), str) and res["model_version"]
            and res.get("promoted") is False,
            {k: res.get(k) for k in ("version", "model_version", "promoted")},
        )
        g = res.get("gate")
        r.check(
            "/train result: gate {passed: bool, reasons: [str]}",
            isinstance(g, dict) and isinstance(g.get("passed"), bool)
            and isinstance(g.get("reasons"), list) and all(isinstance(x, str) for x in g["reasons"]),
            str(g)[:200],
        )
        d = res.get("data")
        r.check(
            f"/train result: data.train_people + data.gate_people = the {people} people of the files",
            isinstance(d, dict) and d.get("train_people", 0) + d.get("gate_people", 0) == people and d.get("gate_people", 0) >= 1,
            str(d)[:200],
        )
        after = self.client.get_model_metadata(self.model).get("versions")
        r.check("promote false: the model in service is unchanged", before == after, f"{before} -> {after}")
        # One person cannot train a population model: a failed job or a 4xx, with a reason.
        st, b, _ = self.http.request("POST", "/train", {"files": names[:4], "promote": False, "steps": a.train_steps})
        if st == 202 and isinstance(b, dict) and isinstance(b.get("jobId"), str):
            st, body = self.poll(b["jobId"])
            r.check(
                "/train on one person -> failed {error}",
                st == 200 and isinstance(body, dict) and body.get("status") == "failed" and isinstance(body.get("error"), str),
                f"got {st} {str(body)[:200]}",
            )
        else:
            r.check("/train on one person -> 4xx {error}", 400 <= st < 500 and is_error_body(b), f"got {st} {b}")

    def authentication(self):
        """Without the token, or with a wrong one, every call but the probes is 401."""
        r = self.r
        if self.token is None:
            r.skip("authentication", "no --token-file")
            return
        wrong = self.token[:-1] + ("0" if self.token[-1] != "0" else "1")
        for method, path, body in (
            ("POST", f"/v2/models/{self.model}/infer", {"inputs": []}),
            ("GET", f"/v2/models/{self.model}", None),
            ("POST", "/train", {"files": ["features/x/y"]}),
            ("POST", "/enrol", {"files": ["features/x/y"]}),
            ("POST", "/input", {"files": ["features/x/y"], "template": {}}),
            ("POST", "/output", {"op": "enrol", "features": [[0.1]]}),
            ("GET", "/status?taskID=" + secrets.token_hex(16), None),
        ):
            for name, token in (("no token", False), ("a wrong token", wrong)):
                st, b, _ = self.http.request(method, path, body, token=token)
                r.check(
                    f"{method} {path.split('?')[0]} with {name} -> 401 unauthorized",
                    st == 401 and is_error_body(b) and b.get("code") == "unauthorized",
                    f"got {st} {str(b)[:160]}",
                )
        for path in ("/v2/health/live", "/v2/health/ready"):
            st, b, _ = self.http.request("GET", path, token=False)
            r.check(f"GET {path} without a token -> 200", st == 200, f"got {st} {str(b)[:160]}")

    def run(self):
        try:
            self.authentication()
        except Exception:  # noqa: BLE001 - counted as a failure
            self.r.crash("authentication")
        try:
            self.health_and_metadata()
        except Exception:  # noqa: BLE001 - counted as a failure
            self.r.crash("health and metadata")
        if self.dim is None:
            self.r.check("feature dimension known from the metadata", False, "cannot go on")
            return self.r
        try:
            self.infer_without_template()
        except Exception:  # noqa: BLE001
            self.r.crash("infer without a template")
        template = None
        try:
            template = self.enrol_and_score()
        except Exception:  # noqa: BLE001
            self.r.crash("enrol and score")
        try:
            self.binary_tensors(template)
        except Exception:  # noqa: BLE001
            self.r.crash("binary tensors")
        try:
            self.bad_requests(template)
        except Exception:  # noqa: BLE001
            self.r.crash("bad requests")
        try:
            self.jobs()
        except Exception:  # noqa: BLE001
            self.r.crash("job API")
        return self.r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base_url")
    ap.add_argument("model")
    ap.add_argument("--objects-dir", help="root directory of the factor's local object store (job API checks)")
    ap.add_argument("--no-jobs", action="store_true", help="the factor has no job API: skip its checks (reported skipped)")
    ap.add_argument("--s3-endpoint", help="write the job API's feature files to this S3-compatible server (needs --bucket)")
    ap.add_argument("--bucket", help="the factor's bucket: jobs name files s3://BUCKET/KEY")
    ap.add_argument("--train-people", type=int, default=16, help="people in the /train check (default 16)")
    ap.add_argument("--train-steps", type=int, default=60, help="training steps sent to /train (default 60)")
    ap.add_argument("--at-rest-key", help="encrypt the feature files written for the job API with this at-rest key file")
    ap.add_argument("--token-file", help="the factor bearer token file: sent on every call, and refusals without it checked")
    ap.add_argument("--factor", choices=sorted(FACTOR_TAGS), default="keystroke-fixed", help="factor of the records written for the job API")
    ap.add_argument("--enrol-n", type=int, default=40, help="enrolment vectors (default 40)")
    ap.add_argument("--low", type=float, default=0.05, help="smallest feature value drawn (default 0.05)")
    ap.add_argument("--high", type=float, default=0.5, help="largest feature value drawn (default 0.5)")
    ap.add_argument("--expect-separation", action="store_true", help="also require genuine llr > impostor llr")
    ap.add_argument("--job-timeout", type=float, default=120.0, help="seconds to wait for a job")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if args.s3_endpoint and not args.bucket:
        ap.error("--s3-endpoint needs --bucket")
    if args.s3_endpoint and args.objects_dir:
        ap.error("--s3-endpoint and --objects-dir exclude each other")
    if not args.low < args.high:
        ap.error("--low must be below --high")
    if not 1 <= args.enrol_n <= MAX_ROWS:
        ap.error(f"--enrol-n must be in 1..{MAX_ROWS}")
    print(f"factor conformance: {args.base_url} model {args.model} (tritonclient[http])", file=sys.stderr)
    r = Conformance(args).run()
    line = f"{r.passed} passed, {r.failed} failed"
    if r.skipped:
        line += f", {r.skipped} skipped"
    print(line)
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
