"""Tests of the running service that the conformance test cannot make: restarts of the
job store (SIGKILL and SIGTERM with a job running), result expiry, hot reload under
load, a service without a model, body limits, object keys, feature files written by
the Rust crate. Starts and stops its own servers (python -m pyfactor) on free loopback
ports, in a temporary directory.

Progress goes to stderr; the last line on stdout is "N passed, M failed".
"""

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.dirname(HERE)
sys.path.insert(0, EXAMPLE)

from pyfactor import payload  # noqa: E402

PASSED = 0
FAILED = 0
# The factor token file every server of these tests requires, and its text (made in
# main()); every request carries it unless told otherwise.
TOKEN_FILE = None
TOKEN = None


def check(name, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"  ok   {name}", file=sys.stderr)
    else:
        FAILED += 1
        print(f"  FAIL {name} {detail}".rstrip(), file=sys.stderr)
    return bool(cond)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp, name, **env):
        self.tmp = tmp
        self.name = name
        self.env = {k: str(v) for k, v in env.items()}
        self.proc = None
        self.port = None
        self.log = os.path.join(tmp, f"{name}.log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, expect_ready=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTOR_", "TACIT_"))}
        env["TACIT_FACTOR_TOKEN_FILE"] = TOKEN_FILE
        env.update(self.env)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for _ in range(5):
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "pyfactor", "--port", str(self.port), "--log-level", "warning"],
                    cwd=EXAMPLE,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                st, _ = get(self.url + "/v2/health/live")
                if st == 200:
                    return self
                time.sleep(0.1)
            self.stop()
            with open(self.log) as f:
                if "address already in use" not in f.read().lower():
                    break
        raise RuntimeError(f"server {self.name} did not start; log {self.log}:\n" + open(self.log).read()[-2000:])

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode if self.proc else None


def request(method, url, body=None, raw=None, headers=None, timeout=30, token=True):
    """token: True sends the tests' factor token, False none, a string that instead."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = dict(headers or {})
    bearer = TOKEN if token is True else token
    if bearer:
        headers.setdefault("Authorization", f"Bearer {bearer}")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            st, content = r.status, r.read()
    except urllib.error.HTTPError as e:
        st, content = e.code, e.read()
    except OSError:
        return None, None
    try:
        return st, json.loads(content) if content else None
    except ValueError:
        return st, content


def get(url):
    return request("GET", url)


def post(url, body=None, **kw):
    return request("POST", url, body, **kw)


def is_error(st, body, want):
    return st == want and isinstance(body, dict) and isinstance(body.get("error"), str)


def wait_job(url, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, b = get(f"{url}/status?taskID={job_id}")
        if st != 200 or b.get("status") != "running":
            return st, b
        time.sleep(0.1)
    return st, b


def vectors(n, centre=0.2, dim=31, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.clip(centre + rng.normal(0, 0.01, (n, dim)), 0.0, 1.0).astype(np.float32)


def write_feature_file(root, key, rows, factor=payload.KEYSTROKE_FIXED):
    recs = [
        payload.FeatureRecord(factor, 1, 1_700_000_000_000, 3000, b"service-test-ctx" if factor == payload.KEYSTROKE_FIXED else None, [float(v) for v in r])
        for r in rows
    ]
    path = os.path.join(root, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(payload.encode(recs))
    return key


def features_input(x):
    return {"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": [float(v) for v in x.reshape(-1)]}


# -- scenarios -------------------------------------------------------------------------


def restarts(tmp):
    print("restarts of the job store", file=sys.stderr)
    jobs, objects = os.path.join(tmp, "r-jobs"), os.path.join(tmp, "r-objects")
    keys = [write_feature_file(objects, f"features/u1/dev/{i:020d}-x.bin", vectors(10, seed=i)) for i in range(3)]
    base = dict(FACTOR_JOB_DIR=jobs, FACTOR_OBJECTS_DIR=objects)

    a = Server(tmp, "restart-a", **base).start()
    st, b = post(a.url + "/enrol", {"files": keys})
    done = b["jobId"]
    st, done_status = wait_job(a.url, done)
    check("a job completes", done_status.get("status") == "completed", done_status)
    a.stop()

    slow = Server(tmp, "restart-slow", FACTOR_TEST_JOB_DELAY_S=60, **base).start()
    st, b = post(slow.url + "/enrol", {"files": keys})
    killed = b["jobId"]
    st, s = get(f"{slow.url}/status?taskID={killed}")
    check("a slow job reads running", s == {"status": "running"}, s)
    # a second process on the same job directory is refused
    second = Server(tmp, "restart-second", FACTOR_JOB_DIR=jobs, FACTOR_OBJECTS_DIR=objects)
    second.port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACTOR_", "TACIT_"))}
    env["TACIT_FACTOR_TOKEN_FILE"] = TOKEN_FILE
    env.update(second.env)
    r = subprocess.run(
        [sys.executable, "-m", "pyfactor", "--port", str(second.port)], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=30
    )
    check("a second instance on the same job directory is refused", r.returncode == 2 and "in use" in r.stderr, (r.returncode, r.stderr[-300:]))
    slow.kill9()

    b2 = Server(tmp, "restart-b", FACTOR_TEST_JOB_DELAY_S=60, **base).start()
    st, s = get(f"{b2.url}/status?taskID={killed}")
    check("after kill -9 the running job reads failed (interrupted by a restart)", s == {"status": "failed", "error": "interrupted by a restart"}, s)
    st, s = get(f"{b2.url}/status?taskID={done}")
    check("a completed job survives the restart with its result", s == done_status, s)
    st, b = post(b2.url + "/enrol", {"files": keys})
    termed = b["jobId"]
    rc = b2.stop()
    check("SIGTERM with a job running stops the service", rc is not None, rc)

    c = Server(tmp, "restart-c", **base).start()
    st, s = get(f"{c.url}/status?taskID={termed}")
    check("after SIGTERM the running job reads failed", s == {"status": "failed", "error": "interrupted by a restart"}, s)
    c.stop()


def expiry(tmp):
    print("expiry of finished results", file=sys.stderr)
    objects = os.path.join(tmp, "e-objects")
    keys = [write_feature_file(objects, "features/u/d/1.bin", vectors(8))]
    s = Server(tmp, "expiry", FACTOR_JOB_DIR=os.path.join(tmp, "e-jobs"), FACTOR_OBJECTS_DIR=objects, TACIT_JOB_TTL_S=1).start()
    try:
        st, b = post(s.url + "/enrol", {"files": keys})
        st, res = wait_job(s.url, b["jobId"])
        check("completed before the TTL", res.get("status") == "completed", res)
        time.sleep(1.6)
        st, res = get(f"{s.url}/status?taskID={b['jobId']}")
        check("after TACIT_JOB_TTL_S the result is gone (404)", is_error(st, res, 404), (st, res))
    finally:
        s.stop()


def write_model(path, **cfg):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    os.replace(tmp, path)


def hot_reload(tmp):
    print("hot reload under load", file=sys.stderr)
    mfile = os.path.join(tmp, "model.json")
    write_model(mfile, version="1")
    s = Server(tmp, "reload", FACTOR_JOB_DIR=os.path.join(tmp, "h-jobs"), FACTOR_MODEL_FILE=mfile, FACTOR_RELOAD_S=0.1).start()
    try:
        x = vectors(40)
        st, b = post(s.url + "/output", {"op": "enrol", "features": x.tolist()})
        template = json.dumps(b["output"]["template"])
        y = vectors(4, seed=9)
        req = {"inputs": [features_input(y), {"name": "template", "shape": [1], "datatype": "BYTES", "data": [template]}], "outputs": [{"name": "llr"}]}
        st, r1 = post(s.url + "/v2/models/py-keystroke/infer", req)
        check("infer on version 1", st == 200 and r1["model_version"] == "1", (st, r1))

        stop = threading.Event()
        stats = {"ok": 0, "bad": [], "versions": set()}

        def hammer():
            while not stop.is_set():
                st, r = post(s.url + "/v2/models/py-keystroke/infer", req)
                if st == 200:
                    stats["ok"] += 1
                    stats["versions"].add(r["model_version"])
                else:
                    stats["bad"].append((st, r))

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        swapped = True
        for v in range(2, 7):
            write_model(mfile, version=str(v), dprime=1.0 + v / 2)  # v6: 4.0, not the default 2.6
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                st, md = get(s.url + "/v2/models/py-keystroke")
                if st == 200 and md["versions"] == [str(v)]:
                    break
                time.sleep(0.05)
            else:
                swapped = False
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        check("five new versions swapped in (metadata reports each)", swapped)
        check(
            f"no request failed during the swaps ({stats['ok']} answered)",
            not stats["bad"] and stats["ok"] > 10,
            stats["bad"][:3],
        )
        check("answers came from several versions", len(stats["versions"]) >= 2, stats["versions"])
        st, r6 = post(s.url + "/v2/models/py-keystroke/infer", req)
        check(
            "the new model is in use (version 6, other d')",
            st == 200 and r6["model_version"] == "6" and r6["outputs"][0]["data"] != r1["outputs"][0]["data"],
        )
        with open(mfile, "w") as f:
            f.write('{"version": "7", "dim": 30}')
        time.sleep(0.6)
        st, md = get(s.url + "/v2/models/py-keystroke")
        st2, _ = get(s.url + "/v2/health/ready")
        check("a bad artifact is refused and the old model stays", st == 200 and md["versions"] == ["6"] and st2 == 200, md)
    finally:
        s.stop()


def training(tmp):
    """/train fits the model on the people of the files, registers the candidate,
    promotes it into FACTOR_MODEL_FILE when the gate passes, and the service then
    serves it; with the model file missing a promotion is refused (409)."""
    print("population training", file=sys.stderr)
    import numpy as np

    mfile = os.path.join(tmp, "t-model.json")
    write_model(mfile, version="1", dprime=1.0)
    objects = os.path.join(tmp, "t-objects")
    rng = np.random.default_rng(9)
    keys = []
    for p in range(16):
        centre = rng.uniform(0.08, 0.3, 31)
        for k in range(3):
            keys.append(write_feature_file(objects, f"features/person{p}/dev/{k:020d}-x.bin", vectors(12, centre=centre, seed=p * 10 + k)))
    s = Server(
        tmp, "train", FACTOR_JOB_DIR=os.path.join(tmp, "t-jobs"), FACTOR_OBJECTS_DIR=objects,
        FACTOR_MODEL_FILE=mfile, FACTOR_REGISTRY_DIR=os.path.join(tmp, "t-registry"), FACTOR_RELOAD_S=0.1,
    ).start()
    try:
        st, b = post(s.url + "/train", {"files": keys, "gate_share": 0.3, "seed": 2})
        check("/train -> 202", st == 202, (st, b))
        st, res = wait_job(s.url, b["jobId"])
        r = res.get("result", {})
        check("/train completes", res.get("status") == "completed", res)
        check("the candidate is v1, registered and promoted", (r.get("version"), r.get("promoted")) == (1, True), r)
        check("d' fitted from the people", r.get("data", {}).get("dprime", 0) > 1.0, r.get("data"))
        served = None
        for _ in range(100):
            st, md = get(s.url + "/v2/models/py-keystroke")
            served = md.get("versions")
            if served == ["v1"]:
                break
            time.sleep(0.1)
        check("the service serves the promoted version", served == ["v1"], served)
        st, b = post(s.url + "/train", {"files": keys, "promote": False, "seed": 3})
        st, res = wait_job(s.url, b["jobId"])
        r = res.get("result", {})
        check("promote false: v2 registered with parent v1, not promoted", (r.get("version"), r.get("parent"), r.get("promoted")) == (2, 1, False), r)
        st, b = post(s.url + "/train", {"files": keys[:3]})
        st, res = wait_job(s.url, b["jobId"])
        check("/train on one person fails with the reason", res.get("status") == "failed" and "people" in res.get("error", ""), res)
        st, b = post(s.url + "/train", {"files": ["notfeatures.bin"], "promote": False})
        check("/train on a key without a person -> 400", is_error(st, b, 400) and "features/USER" in b.get("error", ""), (st, b))
    finally:
        s.stop()
    s = Server(tmp, "train-nofile", FACTOR_JOB_DIR=os.path.join(tmp, "t2-jobs"), FACTOR_OBJECTS_DIR=objects).start()
    try:
        st, b = post(s.url + "/train", {"files": keys})
        check("/train promoting without FACTOR_MODEL_FILE -> 409 conflict", is_error(st, b, 409) and b.get("code") == "conflict", (st, b))
        st, b = post(s.url + "/train", {"files": keys, "nope": 1})
        check("/train with an unknown field -> 400", is_error(st, b, 400), (st, b))
        st, b = post(s.url + "/train", {"files": ["s3://somebucket/features/a/b/c.bin"], "promote": False})
        check("s3:// without FACTOR_BUCKET -> 400", is_error(st, b, 400), (st, b))
    finally:
        s.stop()


def not_ready(tmp):
    print("a service without a model", file=sys.stderr)
    mfile = os.path.join(tmp, "missing-model.json")
    s = Server(tmp, "noready", FACTOR_JOB_DIR=os.path.join(tmp, "n-jobs"), FACTOR_MODEL_FILE=mfile, FACTOR_RELOAD_S=0.1).start()
    try:
        st, _ = get(s.url + "/v2/health/live")
        check("live without a model", st == 200)
        for path in ("/v2/health/ready", "/v2/models/py-keystroke", "/v2/models/py-keystroke/ready"):
            st, b = get(s.url + path)
            check(f"GET {path} without a model -> 503 {{error}}", is_error(st, b, 503), (st, b))
        st, b = post(s.url + "/v2/models/py-keystroke/infer", {"inputs": [features_input(vectors(1))]})
        check("infer without a model -> 503", is_error(st, b, 503), (st, b))
        st, b = post(s.url + "/enrol", {"files": ["features/a.bin"]})
        check("/enrol without a model -> 503", is_error(st, b, 503), (st, b))
        st, b = get(s.url + "/v2/models/gait/ready")
        check("an unknown model is still 404", is_error(st, b, 404), (st, b))
        write_model(mfile, version="1")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and get(s.url + "/v2/health/ready")[0] != 200:
            time.sleep(0.05)
        check("ready once the artifact appears", get(s.url + "/v2/health/ready")[0] == 200)
    finally:
        s.stop()


def limits_and_routes(tmp):
    print("limits, keys, routes, Rust feature files", file=sys.stderr)
    objects = os.path.join(tmp, "l-objects")
    os.makedirs(objects)
    s = Server(tmp, "limits", FACTOR_JOB_DIR=os.path.join(tmp, "l-jobs"), FACTOR_OBJECTS_DIR=objects, FACTOR_MAX_BODY_BYTES=8192).start()
    infer = s.url + "/v2/models/py-keystroke/infer"
    try:
        big = {"inputs": [features_input(vectors(60))]}
        st, b = post(infer, big)
        check("a body over FACTOR_MAX_BODY_BYTES -> 413 {error}", is_error(st, b, 413), (st, b))
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        body = json.dumps(big).encode()
        conn.request(
            "POST",
            "/v2/models/py-keystroke/infer",
            body=iter([body[i : i + 1000] for i in range(0, len(body), 1000)]),
            headers={"Authorization": f"Bearer {TOKEN}"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        rb = resp.read()
        conn.close()
        check("a chunked body over the limit -> 413", resp.status == 413 and b'"error"' in rb, (resp.status, rb[:100]))
        st, b = post(infer, {"inputs": [features_input(vectors(2))]}, headers={"Inference-Header-Content-Length": "10"})
        check("binary tensor extension -> 400", is_error(st, b, 400), (st, b))
        st, b = post(s.url + "/v2/models/py-keystroke/versions/1/infer", {"inputs": [features_input(vectors(2))]})
        check("versioned infer route, version in use -> 200", st == 200, (st, b))
        st, b = post(s.url + "/v2/models/py-keystroke/versions/9/infer", {"inputs": [features_input(vectors(2))]})
        check("versioned infer route, other version -> 404", is_error(st, b, 404), (st, b))
        x = vectors(2)
        x[0, 0] = -1.0
        st, b = post(infer, {"inputs": [features_input(x)]})
        check("a hold time below the schema range -> 400", is_error(st, b, 400), (st, b))
        flat = features_input(vectors(1))
        flat["data"][0] = True
        st, b = post(infer, {"inputs": [flat]})
        check("a boolean in FP32 data -> 400", is_error(st, b, 400), (st, b))
        st, b = post(infer, raw=b"\xff\xfe{}")
        check("a body that is not UTF-8 -> 400", is_error(st, b, 400), (st, b))
        st, b = post(infer, raw=b"[" * 5000 + b"]" * 5000)
        check("deeply nested JSON -> 400 (no 500)", st in (400, 413) and isinstance(b, dict), (st, b))
        st, b = post(infer, raw=b'{"inputs": [{"name": "features", "shape": [1, 31], "datatype": "FP32", "data": [' + b"9" * 5000 + b"]}]}")
        check("a 5000-digit integer -> 400", is_error(st, b, 400), (st, b))
        st, b = get(s.url + "/enrol")
        check("GET /enrol -> 405 {error}", is_error(st, b, 405), (st, b))
        st, b = get(s.url + "/nowhere")
        check("unknown route -> 404 {error}", is_error(st, b, 404), (st, b))
        for bad in ("../x.bin", "/abs.bin", "a//b.bin", "a/./b.bin", "a\\b.bin", "", "x" * 1025):
            st, b = post(s.url + "/enrol", {"files": [bad]})
            check(f"object key {bad[:20]!r} -> 400", is_error(st, b, 400), (st, b))
        st, b = post(s.url + "/enrol", {"files": ["a.bin"] * 1025})
        check("1025 files -> 413", is_error(st, b, 413), (st, b))
        st, b = post(s.url + "/input", {"files": ["a.bin"], "template": {"x": 1}})
        check("/input with a bad template -> 400 at once", is_error(st, b, 400), (st, b))
        st, b = post(s.url + "/input", {"files": ["a.bin"]})
        check("/input without a template -> 400", is_error(st, b, 400), (st, b))

        outside = os.path.join(tmp, "outside.bin")
        write_feature_file(tmp, "outside.bin", vectors(6))
        os.symlink(outside, os.path.join(objects, "link.bin"))
        with open(os.path.join(objects, "garbage.bin"), "wb") as f:
            f.write(b"\x01\x00\x01garbage")
        write_feature_file(objects, "gait-only.bin", [[0.1] * 50], factor=payload.GAIT)
        with open(os.path.join(objects, "huge.bin"), "wb") as f:
            f.write(b"\x00" * ((1 << 20) + 1))
        for key, want in (
            ("link.bin", "outside the object store"),
            ("garbage.bin", "invalid payload"),
            ("gait-only.bin", "no keystroke-fixed records"),
            ("huge.bin", "larger than"),
        ):
            st, b = post(s.url + "/enrol", {"files": [key]})
            st, res = wait_job(s.url, b["jobId"])
            check(f"job on {key} fails: {want}", res.get("status") == "failed" and want in res.get("error", ""), res)
        few = write_feature_file(objects, "few.bin", vectors(3))
        st, b = post(s.url + "/enrol", {"files": [few]})
        st, res = wait_job(s.url, b["jobId"])
        check("enrolment on too few vectors fails with the reason", res.get("status") == "failed" and "at least" in res.get("error", ""), res)

        # feature files exactly as the Rust crate encodes them (tests/data)
        rust_keys = []
        for i in range(5):
            key = f"features/rust-user/{'ab' * 16}/{i:020d}-{secrets.token_hex(16)}.bin"
            os.makedirs(os.path.dirname(os.path.join(objects, key)), exist_ok=True)
            shutil.copy(os.path.join(HERE, "data", "rust-sim-payload.bin"), os.path.join(objects, key))
            rust_keys.append(key)
        st, b = post(s.url + "/enrol", {"files": rust_keys})
        st, res = wait_job(s.url, b["jobId"])
        ok = res.get("status") == "completed" and res["result"]["samples"] == 5
        check("/train on files written by the Rust crate (gait records skipped)", ok, res)
        if ok:
            st, b = post(s.url + "/input", {"files": rust_keys[:2], "template": res["result"]["template"]})
            st, res2 = wait_job(s.url, b["jobId"])
            check("/input on files written by the Rust crate", res2.get("status") == "completed" and res2["result"]["samples"] == 2, res2)
    finally:
        s.stop()


def random_json(rng, depth=0):
    kind = rng.integers(0, 10 if depth < 3 else 7)
    return [
        lambda: None,
        lambda: bool(rng.integers(0, 2)),
        lambda: int(rng.integers(-(2**40), 2**40)),
        lambda: float(rng.normal() * 10.0 ** int(rng.integers(-3, 40))),
        lambda: "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, rng.integers(0, 12))),
        lambda: 10 ** int(rng.integers(300, 400)),
        lambda: -1,
        lambda: [random_json(rng, depth + 1) for _ in range(rng.integers(0, 4))],
        lambda: {str(rng.integers(0, 5)): random_json(rng, depth + 1) for _ in range(rng.integers(0, 3))},
        lambda: {"name": "features", "shape": [1, 31], "datatype": "FP32", "data": [random_json(rng, depth + 1)]},
    ][kind]()


def mutate(rng, value):
    """value with one randomly chosen node replaced by random JSON."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        k = list(value)[rng.integers(0, len(value))]
        return {**value, k: mutate(rng, value[k])}
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = int(rng.integers(0, len(value)))
        return value[:i] + [mutate(rng, value[i])] + value[i + 1 :]
    return random_json(rng)


def fuzz(tmp):
    print("random malformed requests (never a 5xx)", file=sys.stderr)
    import numpy as np

    rng = np.random.default_rng(11)
    objects = os.path.join(tmp, "f-objects")
    key = write_feature_file(objects, "features/u/d/1.bin", vectors(6))
    s = Server(tmp, "fuzz", FACTOR_JOB_DIR=os.path.join(tmp, "f-jobs"), FACTOR_OBJECTS_DIR=objects).start()
    try:
        st, b = post(s.url + "/output", {"op": "enrol", "features": vectors(10).tolist()})
        template = b["output"]["template"]
        x = vectors(2).tolist()
        valid = {
            "/v2/models/py-keystroke/infer": {
                "id": "a",
                "inputs": [
                    {"name": "features", "shape": [2, 31], "datatype": "FP32", "data": x},
                    {"name": "template", "shape": [1], "datatype": "BYTES", "data": [json.dumps(template)]},
                ],
                "outputs": [{"name": "llr"}, {"name": "raw"}],
            },
            "/output": {"op": "score", "features": x, "template": template},
            "/enrol": {"files": [key]},
            "/input": {"files": [key], "template": template},
        }
        statuses = {}
        bad = []
        for i in range(800):
            path = list(valid)[i % len(valid)]
            body = mutate(rng, valid[path])
            st, b = post(s.url + path, raw=json.dumps(body).encode())
            statuses[st] = statuses.get(st, 0) + 1
            if st is None or st >= 500 or (st >= 400 and not isinstance(b, dict)):
                bad.append((path, st, json.dumps(body)[:200]))
        for q in ("", "taskID", "taskID=", "taskID=%00", "taskID=" + "a" * 5000, "taskID=../../etc", "taskID=%ff%fe"):
            st, b = get(f"{s.url}/status?{q}")
            statuses[st] = statuses.get(st, 0) + 1
            if st is None or st >= 500:
                bad.append(("/status", st, q))
        check(f"800 malformed requests answered without a 5xx {dict(sorted(statuses.items()))}", not bad, bad[:3])
        st, _ = get(s.url + "/v2/health/ready")
        check("still ready afterwards", st == 200)
    finally:
        s.stop()


def write_token(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    with open(path) as f:
        return f.read()


def authentication(tmp):
    """Every route but the probes needs the token (401 {"error", "code": "unauthorized"}
    without it or with a wrong one, before any work); no token file, no service unless
    turned off; job records are 0600 in a 0700 directory, sealed at rest, bounded."""
    objects = os.path.join(tmp, "a-objects")
    jobs = os.path.join(tmp, "a-jobs")
    key = os.path.join(tmp, "a-at-rest.key")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    from pyfactor.at_rest import AtRestKeys

    keys = AtRestKeys.from_env({"TACIT_AT_REST_KEY_FILE": key})
    rows = vectors(20, centre=0.2)
    fkey = write_feature_file(objects, "features/u-auth/d/1.bin", rows)
    path = os.path.join(objects, *fkey.split("/"))
    with open(path, "rb") as f:
        plain = f.read()
    with open(path, "wb") as f:
        f.write(keys.seal(fkey, plain))
    s = Server(
        tmp, "auth", FACTOR_JOB_DIR=jobs, FACTOR_OBJECTS_DIR=objects, TACIT_AT_REST_KEY_FILE=key, TACIT_MAX_JOB_RECORDS=5
    ).start()
    try:
        u = s.url
        infer = {"inputs": [features_input(rows[:2])]}
        calls = [
            ("POST", "/enrol", {"files": [fkey]}),
            ("POST", "/input", {"files": [fkey], "template": {}}),
            ("POST", "/v2/models/py-keystroke/infer", infer),
            ("POST", "/output", {"op": "enrol", "features": rows.astype(float).tolist()}),
            ("GET", "/status?taskID=" + secrets.token_hex(16), None),
            ("GET", "/v2/models/py-keystroke", None),
            ("GET", "/v2", None),
            ("GET", "/metrics", None),
        ]
        wrong = TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1")
        for method, route, body in calls:
            for name, token in (("no token", False), ("a wrong token", wrong), ("a Basic header", False)):
                headers = {"Authorization": f"Basic {TOKEN}"} if name == "a Basic header" else None
                st, b = request(method, u + route, body, headers=headers, token=token)
                check(
                    f"{method} {route.split('?')[0]} with {name} -> 401 unauthorized",
                    st == 401 and isinstance(b, dict) and b.get("code") == "unauthorized" and TOKEN not in json.dumps(b),
                    f"got {st} {b}",
                )
        check("no job record from refused calls", [n for n in os.listdir(jobs) if n.endswith(".json")] == [])
        for route in ("/v2/health/live", "/v2/health/ready"):
            st, _ = request("GET", u + route, token=False)
            check(f"GET {route} without a token -> 200", st == 200, f"got {st}")
        st, b = post(u + "/v2/models/py-keystroke/infer", infer)
        check("infer with the token -> 200", st == 200, f"got {st} {b}")
        st, text = request("GET", u + "/metrics")
        text = text.decode() if isinstance(text, bytes) else str(text)
        check(
            "GET /metrics: the in-flight gauge the autoscaler reads, 0 when idle",
            st == 200 and 'tacit_http_requests_in_flight{route="/v2/models/:name/infer"} 0.0' in text,
            f"got {st} {text[:300]}",
        )
        ids = []
        for _ in range(12):
            st, b = post(u + "/enrol", {"files": [fkey]})
            if st == 202:
                ids.append(b["jobId"])
                wait_job(u, b["jobId"])
        check("jobs with the token -> 202", len(ids) == 12, f"{len(ids)} accepted")
        st, b = get(f"{u}/status?taskID={ids[-1]}")
        check("the newest job completed with a template", st == 200 and "template" in (b.get("result") or {}), f"{st} {b}")
        check("job directory mode 0700", os.stat(jobs).st_mode & 0o777 == 0o700, oct(os.stat(jobs).st_mode))
        records = [os.path.join(jobs, n) for n in os.listdir(jobs) if n.endswith(".json")]
        check("job records bounded (TACIT_MAX_JOB_RECORDS=5)", 1 <= len(records) <= 5, f"{len(records)} records")
        for r in records:
            with open(r, "rb") as f:
                data = f.read()
            check(
                f"job record {os.path.basename(r)}: 0600, sealed, no template in clear",
                os.stat(r).st_mode & 0o777 == 0o600 and data.startswith(b"TAR1") and b"template" not in data,
            )
    finally:
        s.stop()
    # Secure by default: without a token file it does not start; turned off, it does.
    missing = Server(tmp, "auth-missing", FACTOR_JOB_DIR=os.path.join(tmp, "am-jobs"), TACIT_FACTOR_TOKEN_FILE="")
    try:
        missing.start()
        check("no token file: refused to start", False)
    except RuntimeError as e:
        check("no token file: refused to start, saying how", "TACIT_FACTOR_AUTH=off" in str(e), str(e)[-300:])
    finally:
        missing.stop()
    off = Server(tmp, "auth-off", FACTOR_JOB_DIR=os.path.join(tmp, "ao-jobs"), TACIT_FACTOR_AUTH="off").start()
    try:
        st, _ = request("GET", off.url + "/v2", token=False)
        check("TACIT_FACTOR_AUTH=off: served without a token", st == 200, f"got {st}")
    finally:
        off.stop()


def main():
    global TOKEN_FILE, TOKEN
    tmp = tempfile.mkdtemp(prefix="pyfactor-service-", dir="/var/tmp")
    TOKEN_FILE = os.path.join(tmp, "factor.token")
    TOKEN = write_token(TOKEN_FILE)
    try:
        for scenario in (authentication, restarts, expiry, hot_reload, training, not_ready, limits_and_routes, fuzz):
            try:
                scenario(tmp)
            except Exception:  # noqa: BLE001 - counted
                check(f"{scenario.__name__}: no unexpected exception", False)
                traceback.print_exc(file=sys.stderr)
    finally:
        if os.environ.get("PYFACTOR_KEEP_TMP"):
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED or PASSED == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
