"""The HTTP service: Open Inference Protocol v2 and the job API of docs/factor-api.md.

Every answer that is not a success is `{"error": "...", "code": "..."}` with 400 (bad
request), 401 (no or wrong factor token), 404 (unknown model, version, route or job),
405, 413 (body or batch too large), 429 (this caller's jobs at their bound) or 503
(model not loaded, job queue full).

Every route but the health probes requires the factor bearer token of the gateway
(`Authorization: Bearer TOKEN`, the file TACIT_FACTOR_TOKEN_FILE), compared in constant
time; the service refuses to start without one unless TACIT_FACTOR_AUTH=off. Bodies are read and parsed here (not by FastAPI's
validation, whose 422 answers are not the contract's), with a size limit, strict JSON
(no NaN/Infinity literals) and explicit checks of every field.
"""

import hashlib
import hmac
import json
import logging
import stat
import math
import os
import re
import threading
import time
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, payload
from .at_rest import MAGIC as AT_REST_MAGIC
from .at_rest import AtRestError, AtRestKeys
from .jobapi import Jobs
from .model import NAME, EnrolError, Model, ModelConfigError, TemplateError, TrainError, train_population
from .registry import Registry

log = logging.getLogger("pyfactor")

MAX_ROWS = 4096
# A pack holds the envelopes of one upload request (the gateway's body limit is 8 MiB
# by default); each payload in it is at most 1 MiB.
MAX_OBJECT_BYTES = 64 << 20
MAX_PAYLOAD_BYTES = 1 << 20  # an envelope is at most 1 MiB, so is its payload
AT_REST_OVERHEAD = 64  # header and tag of an object encrypted at rest
MAX_FILES = 1024
MAX_JOB_VECTORS = 1_000_000
MAX_TEMPLATE_BYTES = 1 << 20
KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_.@=-]+$")


# The stable code of a status, for errors without a more specific one.
CODES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "too_many_jobs",
    503: "unavailable",
}

# Routes open without the token: the probes (the kubelet has no token).
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")
MIN_TOKEN_LEN = 32


class ApiError(Exception):
    def __init__(self, status, message, headers=None, code=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.code = code or CODES.get(status, "internal")


def error_response(status, message, headers=None, code=None):
    body = {"error": message, "code": code or CODES.get(status, "internal")}
    return JSONResponse(body, status_code=status, headers=headers)


def read_token(path):
    """The factor token in `path`: a file of mode 0600 (like every key file) holding one
    line of at least MIN_TOKEN_LEN printable characters. Its content is never shown."""
    st = os.stat(path)
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"factor token {path}: readable by group or others (chmod 600)")
    with open(path, "rb") as f:
        raw = f.read(4096)
    try:
        token = raw.decode("ascii").rstrip()
    except UnicodeDecodeError:
        token = ""
    if len(token) < MIN_TOKEN_LEN or not all(33 <= ord(c) < 127 for c in token):
        raise ValueError(f"factor token {path}: expected one line of at least {MIN_TOKEN_LEN} printable characters")
    return hashlib.sha256(token.encode()).digest()


def token_matches(digest, header):
    """Whether an Authorization header carries the token, in constant time."""
    given = header[len("Bearer ") :] if header and header.startswith("Bearer ") else ""
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest(), digest)


class JobError(Exception):
    """A job that cannot complete (the message is the job's `error`)."""


# -- settings -------------------------------------------------------------------------


def _env_number(env, key, default, lo, hi, cast=float):
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        v = cast(raw)
    except ValueError:
        raise SystemExit(f"{key}={raw!r} is not a number") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise SystemExit(f"{key}={raw} outside [{lo}, {hi}]")
    return v


class Settings:
    """From the environment (see README.md)."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        self.objects_dir = env.get("FACTOR_OBJECTS_DIR") or "./objects"
        self.job_dir = env.get("FACTOR_JOB_DIR") or "./jobs"
        self.job_ttl_s = _env_number(env, "TACIT_JOB_TTL_S", 3600.0, 0.0, 10 * 365 * 86400.0)
        self.model_file = env.get("FACTOR_MODEL_FILE") or None
        # Where trained candidates are registered (pyfactor/registry.py).
        self.registry_dir = env.get("FACTOR_REGISTRY_DIR") or "./models"
        # The S3 bucket whose objects FACTOR_OBJECTS_DIR holds (mounted, e.g. with
        # mountpoint-s3): job files may then name them `s3://BUCKET/KEY`.
        self.bucket = env.get("FACTOR_BUCKET") or None
        self.dim = _env_number(env, "FACTOR_DIM", 31, 4, 382, int)
        self.max_body = _env_number(env, "FACTOR_MAX_BODY_BYTES", 64 << 20, 1024, 1 << 30, int)
        self.reload_s = _env_number(env, "FACTOR_RELOAD_S", 2.0, 0.05, 3600.0)
        self.job_workers = _env_number(env, "FACTOR_JOB_WORKERS", 2, 1, 64, int)
        self.max_jobs = _env_number(env, "FACTOR_MAX_JOBS", 64, 1, 100000, int)
        self.max_jobs_per_caller = _env_number(env, "TACIT_MAX_JOBS_PER_CALLER", 4, 1, 100000, int)
        self.max_job_records = _env_number(env, "TACIT_MAX_JOB_RECORDS", 1000, 1, 10_000_000, int)
        # The gateway's bearer token (the digest of it): on unless turned off explicitly.
        auth = (env.get("TACIT_FACTOR_AUTH") or "on").strip().lower()
        if auth not in ("on", "off", "true", "false", "yes", "no", "1", "0"):
            raise SystemExit(f"TACIT_FACTOR_AUTH={auth!r}: expected on or off")
        self.token_digest = None
        if auth in ("on", "true", "yes", "1"):
            path = env.get("TACIT_FACTOR_TOKEN_FILE")
            if not path:
                raise SystemExit(
                    "factor calls are authenticated: set TACIT_FACTOR_TOKEN_FILE to the gateway's factor "
                    "token (`tacit-backend keygen` writes KEYS_DIR/factor.token), or TACIT_FACTOR_AUTH=off "
                    "where only the network keeps others away from this service"
                )
            try:
                self.token_digest = read_token(path)
            except (OSError, ValueError) as e:
                raise SystemExit(f"TACIT_FACTOR_TOKEN_FILE: {e}") from None
        # Test hook: every job sleeps this long before it starts (restart tests).
        self.test_job_delay_s = _env_number(env, "FACTOR_TEST_JOB_DELAY_S", 0.0, 0.0, 3600.0)
        # Feature objects encrypted at rest by the gateway (TACIT_AT_REST_KEY_FILE).
        try:
            self.at_rest = AtRestKeys.from_env(env)
        except (OSError, ValueError, ImportError) as e:
            raise SystemExit(f"TACIT_AT_REST_KEY_FILE: {e}") from None


# -- the model and its reload -----------------------------------------------------------


class ModelHolder:
    """The model in use. Without FACTOR_MODEL_FILE: the built-in defaults (version "1",
    dimension FACTOR_DIM). With it: that JSON artifact, watched; a new version is loaded
    in the background and swapped in with one reference assignment, so a request that
    took the old model finishes on it. A bad new artifact is logged and the old model
    stays in use; a service that never loaded one is not ready (503)."""

    def __init__(self, settings):
        self.path = settings.model_file
        self.default_cfg = {"dim": settings.dim}
        self.model = None
        self.error = "model not loaded"
        self._sig = None
        self.reloads = 0

    def _signature(self):
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def poll(self):
        if self.path is None:
            if self.model is None:
                self.model = Model(self.default_cfg)
                self.error = None
            return
        try:
            sig = self._signature()
        except OSError as e:
            if self.model is None:
                self.error = f"model file {self.path}: {e.strerror}"
            return
        if sig == self._sig:
            return
        self._sig = sig
        try:
            with open(self.path, "rb") as f:
                raw = f.read(1 << 20)
            cfg = json.loads(raw)
            m = Model(cfg)
        except Exception as e:  # noqa: BLE001 - any bad artifact keeps the model in use
            msg = f"model file {self.path}: {e}"
            log.error("%s (%s)", msg, "keeping the model in use" if self.model else "not ready")
            if self.model is None:
                self.error = msg
            return
        old = self.model
        self.model = m  # the swap: atomic for readers
        self.error = None
        if old is not None:
            self.reloads += 1
        log.info("model %s version %s loaded (dim %d)", m.name, m.version, m.dim)


# -- request parsing ------------------------------------------------------------------


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body):
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None


async def read_body(request, limit):
    """The request body (bytes), refused with 413 past `limit` bytes, whether announced
    by Content-Length or streamed (chunked)."""
    cl = request.headers.get("content-length")
    if cl is not None:
        if not cl.isdigit():
            raise ApiError(400, "bad Content-Length")
        if int(cl) > limit:
            raise ApiError(413, f"body of {cl} bytes is over the limit of {limit}")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"body over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _flatten(data, out, depth, what):
    if depth > 3:
        raise ApiError(400, f"{what}: data nested too deeply")
    for v in data:
        if isinstance(v, list):
            _flatten(v, out, depth + 1, what)
        else:
            out.append(v)


def to_matrix(flat, n, dim, model, what):
    """Validated float32 [n, dim] from a flat list of JSON numbers."""
    if len(flat) != n * dim:
        raise ApiError(400, f"{what}: {len(flat)} values for shape [{n}, {dim}]")
    for v in flat:
        t = type(v)
        if t is not float and t is not int:
            raise ApiError(400, f"{what}: values must be numbers, got {json.dumps(v)[:40]}")
    try:
        x = np.asarray(flat, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):
        raise ApiError(400, f"{what}: a value is not a finite number") from None
    if not np.isfinite(x).all():
        raise ApiError(400, f"{what}: values must be finite")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    if not np.isfinite(x32).all():
        raise ApiError(400, f"{what}: a value is outside the FP32 range")
    x32 = x32.reshape(n, dim)
    try:
        model.check_features(x32)
    except ValueError as e:
        raise ApiError(400, f"{what}: {e}") from None
    return x32


def _shape(v, what):
    if not isinstance(v, list) or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in v):
        raise ApiError(400, f"{what}: shape must be a list of non-negative integers")
    return v


def _template_from_json_text(text):
    if not isinstance(text, str):
        raise ApiError(400, "template: data must hold one string (the template as JSON)")
    if len(text) > MAX_TEMPLATE_BYTES:
        raise ApiError(413, "template: too large")
    try:
        t = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"bad template: not JSON ({e})") from None
    return t


def check_template(model, t):
    try:
        model.parse_template(t)
    except TemplateError as e:
        raise ApiError(400, f"bad template: {e}") from None
    return t


def inputs_by_name(req, allowed):
    """(request id, {input name: input}) of an OIP v2 inference request (parsed JSON),
    every input checked: an object with a name among `allowed`, given once, JSON data
    (no binary extension), a data list."""
    if not isinstance(req, dict):
        raise ApiError(400, "the request must be a JSON object")
    req_id = req.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise ApiError(400, "id must be a string")
    params = req.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise ApiError(400, "parameters must be an object")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ApiError(400, "inputs must be a non-empty list")
    by_name = {}
    for i, inp in enumerate(inputs):
        if not isinstance(inp, dict):
            raise ApiError(400, f"inputs[{i}] must be an object")
        name = inp.get("name")
        if not isinstance(name, str):
            raise ApiError(400, f"inputs[{i}].name must be a string")
        if name not in allowed:
            raise ApiError(400, f"unknown input {name[:64]!r} (inputs: {', '.join(allowed)})")
        if name in by_name:
            raise ApiError(400, f"input {name!r} given twice")
        p = inp.get("parameters")
        if p is not None and not isinstance(p, dict):
            raise ApiError(400, f"input {name!r}: parameters must be an object")
        if p and "binary_data_size" in p:
            raise ApiError(400, "binary tensor data is not supported: send JSON data")
        if "data" not in inp:
            raise ApiError(400, f"input {name!r}: data is required")
        if not isinstance(inp["data"], list):
            raise ApiError(400, f"input {name!r}: data must be a list")
        by_name[name] = inp
    return req_id, by_name


def infer(model, req):
    """One OIP v2 inference request (parsed JSON) -> the response dict."""
    req_id, by_name = inputs_by_name(req, ("features", "template"))
    if "features" not in by_name:
        raise ApiError(400, "input 'features' is required")

    f = by_name["features"]
    if f.get("datatype") != "FP32":
        raise ApiError(400, f"features: datatype must be FP32, got {str(f.get('datatype'))[:20]!r}")
    shape = _shape(f.get("shape"), "features")
    if len(shape) != 2 or shape[1] != model.dim:
        raise ApiError(400, f"features: shape must be [n, {model.dim}], got {shape[:8]}")
    n = shape[0]
    if n < 1:
        raise ApiError(400, "features: at least one row")
    if n > MAX_ROWS:
        raise ApiError(413, f"features: {n} rows, at most {MAX_ROWS}")
    flat = []
    _flatten(f["data"], flat, 1, "features")
    x = to_matrix(flat, n, model.dim, model, "features")

    template = None
    if "template" in by_name:
        t = by_name["template"]
        if t.get("datatype") != "BYTES":
            raise ApiError(400, f"template: datatype must be BYTES, got {str(t.get('datatype'))[:20]!r}")
        if _shape(t.get("shape"), "template") != [1]:
            raise ApiError(400, "template: shape must be [1]")
        tflat = []
        _flatten(t["data"], tflat, 1, "template")
        if len(tflat) != 1:
            raise ApiError(400, "template: data must hold exactly one element")
        template = check_template(model, _template_from_json_text(tflat[0]))

    available = ("llr", "raw") if template is not None else ("embedding",)
    wanted = list(available)
    outs = req.get("outputs")
    if outs is not None:
        if not isinstance(outs, list):
            raise ApiError(400, "outputs must be a list")
        wanted = []
        for i, o in enumerate(outs):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise ApiError(400, f"outputs[{i}] must be an object with a name")
            if o.get("parameters") is not None and not isinstance(o["parameters"], dict):
                raise ApiError(400, f"outputs[{i}].parameters must be an object")
            name = o["name"]
            if name not in available:
                why = "with a template" if template is not None else "without a template"
                raise ApiError(400, f"unknown output {name[:64]!r} ({why} the outputs are {', '.join(available)})")
            if name in wanted:
                raise ApiError(400, f"output {name!r} requested twice")
            wanted.append(name)
        if not wanted:
            wanted = list(available)

    results = {}
    if template is not None:
        llr, raw = model.score(template, x)
        # A template with zero spread or overflowing numbers passes the checks and then
        # scores NaN or infinity, which JSON can only carry as null: refuse it, as the
        # Rust factor does.
        with np.errstate(all="ignore"):
            finite = np.isfinite(np.asarray(llr, dtype=np.float32)).all() and np.isfinite(
                np.asarray(raw, dtype=np.float32)
            ).all()
        if not finite:
            raise ApiError(
                422,
                "the template scores are not finite numbers (a degenerate template): enrol again",
                code="degenerate_template",
            )
        results["llr"] = ([n], llr)
        results["raw"] = ([n], raw)
    else:
        e = model.embed(x)
        results["embedding"] = ([n, e.shape[1]], e)
    outputs = []
    for name in wanted:
        shape, arr = results[name]
        outputs.append(
            {
                "name": name,
                "shape": shape,
                "datatype": "FP32",
                "data": np.asarray(arr, dtype=np.float32).reshape(-1).tolist(),
            }
        )
    resp = {"model_name": model.name, "model_version": model.version}
    if req_id is not None:
        resp["id"] = req_id
    resp["outputs"] = outputs
    return resp


def check_files(body, bucket=None):
    """The store keys of a job's files: store keys as they are, `s3://BUCKET/KEY` of the
    configured bucket as KEY; any other scheme or bucket, or a key with an empty, `.` or
    `..` segment, is a 400."""
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise ApiError(400, "files must be a non-empty list of object keys")
    if len(files) > MAX_FILES:
        raise ApiError(413, f"{len(files)} files, at most {MAX_FILES}")
    keys = []
    for k in files:
        if not isinstance(k, str) or not 1 <= len(k) <= 1024:
            raise ApiError(400, "each file is an object key of 1..1024 characters")
        if k.startswith("s3://"):
            b, _, key = k[5:].partition("/")
            if bucket is None:
                raise ApiError(400, f"{k[:100]!r}: this service's objects are not a bucket (FACTOR_BUCKET unset); name the store key")
            if b != bucket:
                raise ApiError(400, f"{k[:100]!r}: bucket {b[:64]!r} is not this service's bucket")
            k = key
        elif "://" in k:
            raise ApiError(400, f"{k[:100]!r}: only s3://BUCKET/KEY and store keys are accepted")
        segs = k.split("/")
        if any(s in ("", ".", "..") or not KEY_SEGMENT.match(s) for s in segs):
            raise ApiError(400, f"bad object key {k[:100]!r}: segments of [A-Za-z0-9_.@=-], no '.'/'..'")
        keys.append(k)
    return keys


def load_vectors(model, root, keys, at_rest=None, by_key=False, factor=payload.KEYSTROKE_FIXED, dim=None):
    """The model's vectors in the given feature files: the records of `factor`
    (keystroke-fixed by default) with dimension `dim` (default the model's); other
    factors' records are skipped. by_key: a list of (key, vectors) instead, one per
    file."""
    root = os.path.realpath(root)
    if at_rest is not None:
        try:
            at_rest.load_marker(root)
        except (AtRestError, ValueError) as e:
            raise JobError(f"the store's at-rest marker: {e}") from None
    rows, other, wrong_dim = [], 0, 0
    per_key = []
    for key in keys:
        first = len(rows)
        path = os.path.realpath(os.path.join(root, key))
        if not path.startswith(root + os.sep):
            raise JobError(f"{key}: outside the object store")
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_OBJECT_BYTES + AT_REST_OVERHEAD + 1)
        except FileNotFoundError:
            raise JobError(f"{key}: no such object") from None
        except OSError as e:
            raise JobError(f"{key}: {e.strerror}") from None
        if at_rest is not None:
            try:
                data = at_rest.open(key, data)
            except AtRestError as e:
                raise JobError(f"{key}: {e}") from None
        elif data[: len(AT_REST_MAGIC)] == AT_REST_MAGIC:
            raise JobError(f"{key}: encrypted at rest: set TACIT_AT_REST_KEY_FILE to the gateway's at-rest key")
        if len(data) > MAX_OBJECT_BYTES:
            raise JobError(f"{key}: larger than {MAX_OBJECT_BYTES} bytes")
        try:
            blobs = [blob for _, blob in payload.object_entries(key, data)]
        except payload.PayloadError as e:
            raise JobError(f"{key}: invalid payload: {e}") from None
        if any(len(b) > MAX_PAYLOAD_BYTES for b in blobs):
            raise JobError(f"{key}: a payload larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            records = [r for blob in blobs for r in payload.decode(blob)]
        except payload.PayloadError as e:
            raise JobError(f"{key}: invalid payload: {e}") from None
        for r in records:
            if r.factor != factor:
                other += 1
            elif len(r.values) != (model.dim if dim is None else dim):
                wrong_dim += 1
            else:
                rows.append(r.values)
        if len(rows) > MAX_JOB_VECTORS:
            raise JobError(f"more than {MAX_JOB_VECTORS} vectors")
        per_key.append((key, first, len(rows)))
    if not rows:
        raise JobError(
            f"no {payload.FACTOR_NAMES[factor]} records of dimension {model.dim if dim is None else dim} in {len(keys)} files "
            f"({other} records of other factors, {wrong_dim} of another dimension)"
        )
    x = np.asarray(rows, dtype=np.float32)
    if by_key:
        return [(k, x[a:b]) for k, a, b in per_key]
    return x


def vectors_by_user(per_key):
    """{user: vectors} of feature files `features/USER/...` (a person is a USER), each
    user's files in key order (the gateway's keys sort by upload sequence)."""
    by_user = {}
    for key, x in sorted(per_key, key=lambda kx: kx[0]):
        segs = key.split("/")
        if len(segs) < 3 or segs[0] != "features":
            raise JobError(f"{key}: training files are features/USER/... (a person is a USER)")
        by_user.setdefault(segs[1], []).append(x)
    return {u: np.concatenate(xs) for u, xs in by_user.items()}


# -- the app --------------------------------------------------------------------------


def create_app(settings=None):
    settings = settings or Settings()
    holder = ModelHolder(settings)
    holder.poll()
    jobs = Jobs(settings, ApiError, (JobError, EnrolError, TemplateError))
    store = jobs.store
    registry = Registry(settings.registry_dir, settings.model_file)
    stop = threading.Event()

    def background():
        last_sweep = 0.0
        while not stop.wait(settings.reload_s):
            try:
                holder.poll()
                if time.monotonic() - last_sweep > min(60.0, max(1.0, settings.job_ttl_s / 4)):
                    store.sweep()
                    last_sweep = time.monotonic()
            except Exception:  # noqa: BLE001 - the watcher must survive anything
                log.exception("background task")

    @asynccontextmanager
    async def lifespan(app):
        t = threading.Thread(target=background, name="watcher", daemon=True)
        t.start()
        yield
        stop.set()
        jobs.close()

    app = FastAPI(title="tacit python factor", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.holder = holder
    app.state.store = store
    app.state.settings = settings

    if settings.token_digest is None:
        log.warning("factor authentication is off (TACIT_FACTOR_AUTH=off): anyone who reaches this service can call it")

    # The requests being served, by route: what the cluster's autoscaler scales on
    # (deploy/k8s/monitoring), under the name and labels the Rust factors use.
    metrics = CollectorRegistry()
    in_flight_g = Gauge("tacit_http_requests_in_flight", "Requests being served, by route.", ["route"], registry=metrics)
    for r in ("/v2/models/:name/infer", "/output"):
        in_flight_g.labels(route=r)

    def route_of(path):
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            return "/v2/models/:name/infer"
        return path if path in ("/output", "/train", "/enrol", "/input") else None

    @app.middleware("http")
    async def _require_token(request, call_next):
        # Before any handler or body read: a caller without the token costs nothing.
        if settings.token_digest is not None and request.url.path not in OPEN_PATHS:
            if not token_matches(settings.token_digest, request.headers.get("authorization")):
                return error_response(401, "missing or wrong factor bearer token", {"WWW-Authenticate": "Bearer"})
        route = route_of(request.url.path)
        if route is None:
            return await call_next(request)
        g = in_flight_g.labels(route=route)
        g.inc()
        try:
            return await call_next(request)
        finally:
            g.dec()

    @app.get("/metrics")
    async def metrics_text():
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc):
        return error_response(exc.status, exc.message, exc.headers, exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        msg = exc.detail if isinstance(exc.detail, str) else "error"
        return error_response(exc.status_code, msg, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        return error_response(400, "bad request")

    @app.exception_handler(Exception)
    async def _internal(request, exc):
        log.exception("internal error")
        return error_response(500, "internal error")

    def current_model(name, version=None):
        if name != NAME:
            raise ApiError(404, f"unknown model {name[:64]!r}")
        m = holder.model
        if m is None:
            raise ApiError(503, holder.error or "model not loaded")
        if version is not None and version != m.version:
            raise ApiError(404, f"model {name} has no version {version[:64]!r} (in use: {m.version})")
        return m

    # -- OIP v2 --------------------------------------------------------------------

    @app.get("/v2")
    async def server_metadata():
        return {"name": "tacit-factor", "version": __version__, "extensions": []}

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        if holder.model is None:
            raise ApiError(503, holder.error or "model not loaded")
        return {"ready": True}

    def metadata(m):
        return {
            "name": m.name,
            "versions": [m.version],
            "platform": "python-numpy",
            "inputs": [
                {"name": "features", "datatype": "FP32", "shape": [-1, m.dim]},
                {"name": "template", "datatype": "BYTES", "shape": [1]},
            ],
            "outputs": [
                {"name": "llr", "datatype": "FP32", "shape": [-1]},
                {"name": "raw", "datatype": "FP32", "shape": [-1]},
                {"name": "embedding", "datatype": "FP32", "shape": [-1, m.dim]},
            ],
        }

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str):
        return metadata(current_model(name))

    @app.get("/v2/models/{name}/versions/{version}")
    async def model_version_metadata(name: str, version: str):
        return metadata(current_model(name, version))

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str):
        m = current_model(name)
        return {"name": m.name, "ready": True}

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_version_ready(name: str, version: str):
        m = current_model(name, version)
        return {"name": m.name, "ready": True}

    async def do_infer(request, name, version=None):
        m = current_model(name, version)
        if request.headers.get("inference-header-content-length") is not None:
            raise ApiError(400, "binary tensor data is not supported: send JSON data")
        body = await read_body(request, settings.max_body)
        # parsing and validation are CPU work too: off the event loop
        return await run_in_threadpool(lambda: infer(m, parse_json(body)))

    @app.post("/v2/models/{name}/infer")
    async def model_infer(name: str, request: Request):
        return await do_infer(request, name)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def model_version_infer(name: str, version: str, request: Request):
        return await do_infer(request, name, version)

    # -- job API ---------------------------------------------------------------------

    def caller_of(request):
        return request.client.host if request.client else ""

    def need_model():
        m = holder.model
        if m is None:
            raise ApiError(503, holder.error or "model not loaded")
        return m

    def parse_object(raw):
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    async def json_object(request):
        raw = await read_body(request, settings.max_body)
        return await run_in_threadpool(parse_object, raw)

    submit = jobs.submit

    @app.post("/enrol")
    async def enrol(request: Request):
        body = await json_object(request)
        m = need_model()
        files = check_files(body, settings.bucket)
        if "template" in body:
            raise ApiError(400, "an enrolment builds a template (to score, POST /input)")

        def job():
            return m.enrol_result(load_vectors(m, settings.objects_dir, files, settings.at_rest))

        return await run_in_threadpool(submit, "enrol", job, caller_of(request))

    @app.post("/train")
    async def train(request: Request):
        body = await json_object(request)
        m = need_model()
        files = check_files(body, settings.bucket)

        def job(promote, share, seed):
            try:
                per_key = load_vectors(m, settings.objects_dir, files, settings.at_rest, by_key=True)
                by_user = vectors_by_user(per_key)
                cfg, report = train_population(m, by_user, share, seed)
            except TrainError as e:
                raise JobError(f"training: {e}") from None
            manifest = registry.register(cfg, report, NAME)
            promoted = promote and manifest["gate"]["passed"]
            if promoted:
                # The reload loop loads it (FACTOR_RELOAD_S), as any new model file.
                registry.promote(manifest["version"])
            log.info("trained v%s: gate %s, promoted %s", manifest["version"], manifest["gate"]["passed"], promoted)
            return dict(manifest, promoted=promoted)

        return await run_in_threadpool(
            jobs.train, body, files, settings.model_file, "FACTOR_MODEL_FILE", job, caller_of(request)
        )

    @app.post("/input")
    async def input_(request: Request):
        body = await json_object(request)
        m = need_model()
        files = check_files(body, settings.bucket)
        if "template" not in body:
            raise ApiError(400, "template is required")
        template = check_template(m, body["template"])

        def job():
            return m.score_result(template, load_vectors(m, settings.objects_dir, files, settings.at_rest))

        return await run_in_threadpool(submit, "input", job, caller_of(request))

    def output_sync(m, body):
        op = body.get("op")
        if op not in ("enrol", "score"):
            raise ApiError(400, 'op must be "enrol" or "score"')
        feats = body.get("features")
        if not isinstance(feats, list) or not feats:
            raise ApiError(400, "features must be a non-empty list of vectors")
        if len(feats) > MAX_ROWS:
            raise ApiError(413, f"{len(feats)} vectors, at most {MAX_ROWS}")
        for i, row in enumerate(feats):
            if not isinstance(row, list) or len(row) != m.dim:
                raise ApiError(400, f"features[{i}] must be a list of {m.dim} numbers")
        flat = [v for row in feats for v in row]
        x = to_matrix(flat, len(feats), m.dim, m, "features")
        if op == "enrol":
            try:
                return {"output": m.enrol_result(x)}
            except EnrolError as e:
                raise ApiError(400, str(e)) from None
        if "template" not in body:
            raise ApiError(400, "op score needs a template")
        template = check_template(m, body["template"])
        return {"output": m.score_result(template, x)}

    @app.post("/output")
    async def output(request: Request):
        raw = await read_body(request, settings.max_body)
        m = need_model()
        return await run_in_threadpool(lambda: output_sync(m, parse_object(raw)))

    @app.get("/status")
    async def status(request: Request):
        return jobs.status(request.query_params.get("taskID"))

    return app
