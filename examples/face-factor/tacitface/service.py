"""The face factor's HTTP service: Open Inference Protocol v2 for scoring and for
turning images into embeddings, `POST /output` enrolment and scoring, the factor token,
and `/metrics` — the Python factor's service toolkit (`pyfactor`, examples/python-factor)
with the face model.

Images arrive only as the `image` input of an inference call (BYTES, base64 strings,
at most MAX_IMAGES per call) and leave as embeddings: they are decoded in memory, never
written to a file, a job record or a log (a test scans all three after a run).

Inputs of `POST /v2/models/face/infer`:
  * `image` BYTES [n]: images (base64) -> outputs, one row per image, `embedding`
    FP32 [n, 128], `quality` FP32 [n], `image_hash` FP32 [n, 4] (the replay hash in
    16-bit chunks) and `refusal` BYTES [n]: "" for a usable face, else why not
    (`no_face`, `too_small`, `too_dark`, `too_bright`, `blurred`, `undecodable`), with
    zeros in its other rows. One bad image in a batch does not fail the others: the
    gateway sends a phone's images together and keeps the usable ones;
  * `features` FP32 [n, 128] (embeddings) or [n, 133] (face records: embedding,
    quality, replay hash) with `template` BYTES [1] -> `llr`, `raw` (minus the
    distance), `attempt_llr` (of the median distance), `replayed` (1 where a probe is an
    enrolment image presented again; its LLR, and the attempt's, is then REPLAY_LLR),
    `impostor_llr` (the calibration people's impostor LLRs, bins of 0.25) and
    `impostor_floor`; without a template -> `embedding` (the vectors, unit length).

The job API of docs/factor-api.md (`pyfactor`'s job machinery: crash-safe records,
sealed at rest with TACIT_AT_REST_KEY_FILE, bounded in flight) works on the face records
the gateway stored, read from FACTOR_OBJECTS_DIR (the feature store, mounted; with
FACTOR_BUCKET its `s3://` names are accepted), never on images:
  * `POST /enrol {"files"}` -> a template (at most 10 embeddings, with quality and
    replay hashes); `POST /input {"files", "template"}` -> scores;
  * `POST /train {"files", "promote", "gate_share", "seed"}` -> a calibration from the
    users of those files (tacitface/training.py), registered in FACTOR_REGISTRY_DIR and
    promoted into FACE_MODEL_FILE when the gate passes (one training at a time);
  * `GET /status?taskID=`.
"""

import base64
import binascii
import logging
import math
import os

import numpy as np

from . import __version__, images
from .embed import DetectionFailure, embed
from .model import DIM, HASH_CHUNKS, NAME, RECORD_DIM, FaceModel, TemplateError
from .training import TrainError, train_population

from pyfactor import payload as pf_payload  # noqa: E402 - the shared toolkit
from pyfactor.app import (  # noqa: E402
    MAX_ROWS,
    OPEN_PATHS,
    ApiError,
    JobError,
    check_files,
    load_vectors,
    vectors_by_user,
    _flatten,
    _shape,
    _template_from_json_text,
    error_response,
    inputs_by_name,
    parse_json,
    read_body,
    to_matrix,
    token_matches,
)
from pyfactor.app import Settings as _FactorSettings  # noqa: E402
from pyfactor.jobapi import Jobs  # noqa: E402
from pyfactor.registry import Registry  # noqa: E402

log = logging.getLogger("tacitface")
MAX_IMAGES = 16
MAX_BODY = MAX_IMAGES * (images.MAX_BYTES * 4 // 3 + 16) + (1 << 20)


class Settings(_FactorSettings):
    """The Python factor's settings (the token, the job store, the objects directory,
    the registry, the at-rest key: examples/python-factor/README.md), with the model in
    FACE_MODEL_FILE and the face factor's own default directories."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        super().__init__(env)
        self.model_file = env.get("FACE_MODEL_FILE") or None
        self.job_dir = env.get("FACTOR_JOB_DIR") or "./face-jobs"
        self.registry_dir = env.get("FACTOR_REGISTRY_DIR") or "./face-models"


def _b64(s, i):
    if not isinstance(s, str):
        raise ApiError(400, f"image[{i}]: a base64 string")
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"image[{i}]: not base64") from None


def _out(name, shape, arr):
    return {"name": name, "shape": shape, "datatype": "FP32", "data": np.asarray(arr, dtype=np.float32).reshape(-1).tolist()}


def infer(model, req):
    req_id, by = inputs_by_name(req, ("image", "features", "template"))
    if ("image" in by) == ("features" in by):
        raise ApiError(400, "exactly one of the inputs image and features")
    outputs = []
    if "image" in by:
        if "template" in by:
            raise ApiError(400, "an image is turned into an embedding; score embeddings (features) against a template")
        im = by["image"]
        if im.get("datatype") != "BYTES" or len(_shape(im.get("shape"), "image")) != 1:
            raise ApiError(400, "image: datatype BYTES, shape [n]")
        flat = []
        _flatten(im["data"], flat, 1, "image")
        if not 1 <= len(flat) <= MAX_IMAGES or im["shape"] != [len(flat)]:
            raise ApiError(400 if len(flat) <= MAX_IMAGES else 413, f"image: 1..{MAX_IMAGES} images matching the shape")
        embs, qual, hashes, refusals = [], [], [], []
        for i, s in enumerate(flat):
            data = _b64(s, i)
            try:
                face = embed(images.decode(data))
            except (images.ImageError, DetectionFailure) as e:
                refusals.append(getattr(e, "kind", "undecodable"))
                embs.append(np.zeros(DIM))
                qual.append(0.0)
                hashes.append([0] * HASH_CHUNKS)
                continue
            refusals.append("")
            embs.append(face.embedding)
            qual.append(face.quality)
            h = face.image_hash
            hashes.append([(h >> 48) & 0xFFFF, (h >> 32) & 0xFFFF, (h >> 16) & 0xFFFF, h & 0xFFFF])
        n = len(flat)
        outputs = [
            _out("embedding", [n, DIM], embs),
            _out("quality", [n], qual),
            _out("image_hash", [n, HASH_CHUNKS], hashes),
            {"name": "refusal", "shape": [n], "datatype": "BYTES", "data": refusals},
        ]
    else:
        f = by["features"]
        if f.get("datatype") != "FP32":
            raise ApiError(400, "features: datatype must be FP32")
        shape = _shape(f.get("shape"), "features")
        if len(shape) != 2 or shape[1] not in (DIM, RECORD_DIM) or shape[0] < 1:
            raise ApiError(400, f"features: shape must be [n, {DIM}] or [n, {RECORD_DIM}]")
        if shape[0] > MAX_ROWS:
            raise ApiError(413, f"features: at most {MAX_ROWS} rows")
        flat = []
        _flatten(f["data"], flat, 1, "features")
        x = to_matrix(flat, shape[0], shape[1], model, "features")
        if "template" in by:
            t = by["template"]
            if t.get("datatype") != "BYTES" or t.get("shape") != [1]:
                raise ApiError(400, "template: datatype BYTES, shape [1]")
            tflat = []
            _flatten(t["data"], tflat, 1, "template")
            if len(tflat) != 1:
                raise ApiError(400, "template: exactly one element")
            template = _template_from_json_text(tflat[0])
            try:
                llr, raw = model.score(template, x)
                attempt = model.attempt(template, x)
                replayed = model.replayed(template, x)
            except TemplateError as e:
                raise ApiError(400, f"bad template: {e}") from None
            if replayed.any():
                log.warning("replayed face image: %d of %d probes match an enrolment image", int(replayed.sum()), len(x))
            hist = model.cal.histogram()
            outputs = [
                _out("llr", [len(x)], llr),
                _out("raw", [len(x)], raw),
                _out("attempt_llr", [1], [attempt]),
                _out("replayed", [len(x)], replayed.astype(np.float32)),
                _out("impostor_llr", [len(hist), 2], hist),
                _out("impostor_floor", [1], [model.cal.floor]),
            ]
        else:
            e = model.embed(x)
            outputs = [_out("embedding", [len(e), DIM], e)]
    wanted = req.get("outputs")
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
            raise ApiError(400, "outputs must be a list of objects with a name")
        names = [o["name"] for o in wanted]
        have = {o["name"] for o in outputs}
        unknown = [n for n in names if n not in have]
        if unknown:
            raise ApiError(400, f"unknown output {unknown[0][:64]!r} (outputs here: {', '.join(sorted(have))})")
        if names:
            outputs = [o for o in outputs if o["name"] in names]
    resp = {"model_name": NAME, "model_version": model.version}
    if req_id is not None:
        resp["id"] = req_id
    resp["outputs"] = outputs
    return resp


def output(model, body):
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    op = body.get("op")
    if op not in ("enrol", "score"):
        raise ApiError(400, 'op must be "enrol" or "score"')
    feats = body.get("features")
    width = len(feats[0]) if isinstance(feats, list) and feats and isinstance(feats[0], list) else None
    if (
        width not in (DIM, RECORD_DIM)
        or not 1 <= len(feats) <= MAX_ROWS
        or not all(isinstance(r, list) and len(r) == width for r in feats)
    ):
        raise ApiError(400, f"features: 1..{MAX_ROWS} embeddings of {DIM} numbers or face records of {RECORD_DIM}")
    x = to_matrix([v for r in feats for v in r], len(feats), width, model, "features")
    if op == "enrol":
        q = body.get("quality")
        if q is not None and (not isinstance(q, list) or len(q) != len(feats) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in q)):
            raise ApiError(400, "quality: one finite number per embedding")
        t = model.enrol(x, q)
        return {"output": {"template": t, "samples": len(feats), "model_version": model.version}}
    try:
        llr, _ = model.score(body.get("template"), x)
    except TemplateError as e:
        raise ApiError(400, f"bad template: {e}") from None
    return {"output": {"scores": [float(v) for v in llr], "mean_llr": float(np.mean(llr)), "samples": len(feats), "model_version": model.version}}


def create_app(settings=None):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from contextlib import asynccontextmanager

    settings = settings or Settings()
    state = {"model": None, "error": "no model: set FACE_MODEL_FILE (python -m tacitface calibrate writes one)"}

    def load_model():
        """(Re)loads FACE_MODEL_FILE; a bad file keeps the model in use."""
        try:
            state["model"] = FaceModel(settings.model_file)
            state["error"] = None
        except (OSError, ValueError, KeyError, SystemExit) as e:
            msg = f"FACE_MODEL_FILE {settings.model_file}: {e}"
            log.error("%s", msg)
            if state["model"] is None:
                state["error"] = msg

    if settings.model_file:
        load_model()
    jobs = Jobs(settings, ApiError, (JobError, TemplateError, TrainError, ValueError))
    registry = Registry(settings.registry_dir, settings.model_file)

    @asynccontextmanager
    async def lifespan(app):
        yield
        jobs.close()

    app = FastAPI(title="tacit face factor", version=__version__, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    metrics = CollectorRegistry()
    in_flight = Gauge("tacit_http_requests_in_flight", "Requests being served, by route.", ["route"], registry=metrics)

    @app.middleware("http")
    async def _guard(request, call_next):
        if settings.token_digest is not None and request.url.path not in OPEN_PATHS:
            if not token_matches(settings.token_digest, request.headers.get("authorization")):
                return error_response(401, "missing or wrong factor bearer token", {"WWW-Authenticate": "Bearer"})
        path = request.url.path
        route = "/v2/models/:name/infer" if path.endswith("/infer") else path if path in ("/output", "/enrol", "/input", "/train") else None
        if route is None:
            return await call_next(request)
        g = in_flight.labels(route=route)
        g.inc()
        try:
            return await call_next(request)
        finally:
            g.dec()

    @app.exception_handler(ApiError)
    async def _api_error(request, exc):
        return error_response(exc.status, exc.message, exc.headers, exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        return error_response(exc.status_code, exc.detail if isinstance(exc.detail, str) else "error")

    @app.exception_handler(Exception)
    async def _internal(request, exc):
        log.error("internal error: %s", type(exc).__name__)  # never the request
        return error_response(500, "internal error")

    def need_model(name=NAME):
        if name != NAME:
            raise ApiError(404, f"unknown model {name[:64]!r}")
        m = state["model"]
        if m is None:
            raise ApiError(503, state["error"])
        return m

    @app.get("/v2")
    async def server_meta():
        return {"name": "tacit-face-factor", "version": __version__, "extensions": []}

    @app.get("/v2/health/live")
    async def live():
        return Response(status_code=200)

    @app.get("/v2/health/ready")
    async def ready():
        need_model()
        return Response(status_code=200)

    @app.get("/v2/models/{name}")
    async def model_meta(name: str):
        m = need_model(name)
        return {
            "name": NAME,
            "versions": [m.version],
            "platform": "dlib-resnet128",
            "inputs": [
                # Face records of RECORD_DIM values are accepted too (module docs).
                {"name": "features", "datatype": "FP32", "shape": [-1, DIM]},
                {"name": "template", "datatype": "BYTES", "shape": [1]},
                {"name": "image", "datatype": "BYTES", "shape": [-1]},
            ],
            "outputs": [
                {"name": n, "datatype": "FP32", "shape": s}
                for n, s in (("llr", [-1]), ("raw", [-1]), ("attempt_llr", [1]), ("impostor_llr", [-1, 2]),
                             ("impostor_floor", [1]), ("embedding", [-1, DIM]), ("quality", [-1]))
            ],
            "parameters": {"trained_on": m.trained_on},
        }

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str):
        need_model(name)
        return Response(status_code=200)

    @app.post("/v2/models/{name}/infer")
    async def do_infer(name: str, request: Request):
        m = need_model(name)
        raw = await read_body(request, MAX_BODY)
        return await run_in_threadpool(lambda: infer(m, parse_json(raw)))

    @app.post("/output")
    async def do_output(request: Request):
        m = need_model()
        raw = await read_body(request, 1 << 24)
        return await run_in_threadpool(lambda: output(m, parse_json(raw)))

    # -- job API: face records the gateway stored, never images ----------------------

    def caller_of(request):
        return request.client.host if request.client else ""

    async def job_body(request):
        raw = await read_body(request, 1 << 24)
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    def records(m, files, by_key=False):
        return load_vectors(m, settings.objects_dir, files, settings.at_rest, by_key=by_key, factor=pf_payload.FACE, dim=RECORD_DIM)

    @app.post("/enrol")
    async def job_enrol(request: Request):
        body = await job_body(request)
        m = need_model()
        files = check_files(body, settings.bucket)
        if "template" in body:
            raise ApiError(400, "an enrolment builds a template (to score, POST /input)")

        def job():
            x = records(m, files)
            return {"template": m.enrol(x), "samples": int(len(x)), "model_version": m.version}

        return await run_in_threadpool(jobs.submit, "enrol", job, caller_of(request))

    @app.post("/input")
    async def job_input(request: Request):
        body = await job_body(request)
        m = need_model()
        files = check_files(body, settings.bucket)
        template = body.get("template")
        if template is None:
            raise ApiError(400, "template is required")
        try:
            m.parse_template(template)
            m.template_hashes(template)
        except TemplateError as e:
            raise ApiError(400, f"bad template: {e}") from None

        def job():
            x = records(m, files)
            llr, _ = m.score(template, x)
            return {
                "scores": [float(v) for v in llr],
                "attempt_llr": m.attempt(template, x),
                "replayed": int(m.replayed(template, x).sum()),
                "samples": int(len(x)),
                "model_version": m.version,
            }

        return await run_in_threadpool(jobs.submit, "input", job, caller_of(request))

    @app.post("/train")
    async def job_train(request: Request):
        body = await job_body(request)
        m = need_model()
        files = check_files(body, settings.bucket)

        def job(promote, share, seed):
            by_user = vectors_by_user(records(m, files, by_key=True))
            emb = {u: FaceModel.split(x)[0] for u, x in by_user.items()}
            cfg, report = train_population(m, emb, share, seed)
            manifest = registry.register(cfg, report, NAME)
            promoted = promote and manifest["gate"]["passed"]
            if promoted:
                registry.promote(manifest["version"])
                load_model()
            log.info("trained v%s: gate %s, promoted %s", manifest["version"], manifest["gate"]["passed"], promoted)
            return dict(manifest, promoted=promoted)

        return await run_in_threadpool(
            jobs.train, body, files, settings.model_file, "FACE_MODEL_FILE", job, caller_of(request)
        )

    @app.get("/status")
    async def job_status(request: Request):
        return jobs.status(request.query_params.get("taskID"))

    @app.get("/metrics")
    async def metrics_text():
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def fallback(path: str):
        return JSONResponse({"error": "no such endpoint", "code": "not_found"}, status_code=404)

    return app
