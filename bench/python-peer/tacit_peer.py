"""The PyTorch peer of Tacit's factor service: the same model and the same OIP v2 infer
call, the way a Python team would serve it (FastAPI + PyTorch under uvicorn).

The model comes from `tacit-backend model-export` (JSON: transform, MLP weights,
calibration); the scoring is a re-implementation of backend/models/src/template.rs:

    z   = (compress(x) - mean) / scale                  float64
    e   = l2normalize(L3(relu(L2(relu(L1(z))))))         float32 (torch)
    r   = z ‖ e
    raw = (-Σ|z - c|/s - m_d) / sd_d  [+ ((w·r + b) - m_c) / sd_c  with a contrast part]
    llr = a·raw + b'    (calibration.full when the template's samples >= full_samples,
                         else .fallback)

Settings (environment): PEER_MODEL (the exported JSON, required), PEER_TORCH_THREADS
(intra-op threads per process, default 1: one uvicorn worker per core).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

MAX_ROWS = 4096
MAX_TEMPLATE_BYTES = 1 << 20


class BadRequest(Exception):
    """A client error: its message goes back with status 400."""


class EmbeddingNet(torch.nn.Module):
    """input → hidden → hidden → output, ReLU between, L2-normalised (net.rs)."""

    def __init__(self, layers: list[dict]):
        super().__init__()
        if [l["activation"] for l in layers] != ["relu", "relu", "none"]:
            raise ValueError("expected three dense layers: relu, relu, none")
        self.dense = torch.nn.ModuleList()
        for l in layers:
            w = torch.tensor(l["weight"], dtype=torch.float32)  # [out, in]
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(w)
                lin.bias.copy_(torch.tensor(l["bias"], dtype=torch.float32))
            self.dense.append(lin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.dense[0](x))
        h = F.relu(self.dense[1](h))
        return F.normalize(self.dense[2](h), p=2.0, dim=1, eps=1e-12)


class Model:
    """An exported Tacit model, ready to score."""

    def __init__(self, path: str):
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
        if m.get("format") != "tacit-model-json" or m.get("format_version") != 2:
            raise ValueError(f"{path}: not a tacit-model-json v2 export")
        self.factor: str = m["factor"]
        self.version: str = m["model_version"]
        self.dim: int = m["shape"]["input"]
        self.k: int = m["shape"]["output"]
        t = m["transform"]
        self.compression: str = t["compression"]
        if self.compression not in ("none", "log-time"):
            raise ValueError(f"unknown compression {self.compression!r}")
        self.mean = np.asarray(t["mean"], dtype=np.float64)
        self.scale = np.asarray(t["scale"], dtype=np.float64)
        self.net = EmbeddingNet(m["network"]["layers"]).eval()
        c = m["calibration"]
        self.calibration = {k: tuple(c[k]) for k in ("full", "fallback")}
        self.full_samples = int(c["full_samples"])

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        if self.compression == "log-time":
            x = np.sign(x) * np.log1p(np.abs(x) * 10.0)
        return (x - self.mean) / self.scale

    def embed(self, z: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            e = self.net(torch.from_numpy(z.astype(np.float32)))
        return e.numpy().astype(np.float64)

    def parse_template(self, s: str) -> dict:
        if len(s) > MAX_TEMPLATE_BYTES:
            raise BadRequest("template: larger than 1 MiB")
        try:
            t = json.loads(s)
            if t["factor"] != self.factor:
                raise BadRequest(f"template: for factor {t['factor']}, this is {self.factor}")
            det = t["detector"]
            out = {
                "centre": np.asarray(det["centre"], dtype=np.float64),
                "scale": np.asarray(det["scale"], dtype=np.float64),
                "norm": (float(t["detector_norm"]["mean"]), float(t["detector_norm"]["sd"])),
                "contrast": None,
                "samples": int(t["samples"]),
            }
            if t.get("contrast") is not None:
                lr, norm = t["contrast"]
                out["contrast"] = (
                    np.asarray(lr["w"], dtype=np.float64),
                    float(lr["b"]),
                    (float(norm["mean"]), float(norm["sd"])),
                )
        except BadRequest:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise BadRequest(f"template: not a template ({e!r})") from None
        if out["centre"].shape != (self.dim,) or out["scale"].shape != (self.dim,) or (
            out["contrast"] is not None and out["contrast"][0].shape != (self.dim + self.k,)
        ):
            raise BadRequest("template: does not fit this model's dimensions")
        return out

    def score(self, t: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(raw, llr) of every row of `x` [n, dim] against a parsed template."""
        z = self.transform(x)
        e = self.embed(z)
        m, sd = t["norm"]
        raw = (-(np.abs(z - t["centre"]) / t["scale"]).sum(axis=1) - m) / sd
        if t["contrast"] is not None:
            w, bias, (cm, csd) = t["contrast"]
            r = np.concatenate([z, e], axis=1)
            raw = raw + ((r @ w + bias) - cm) / csd
        a, b = self.calibration["full" if t["samples"] >= self.full_samples else "fallback"]
        return raw, a * raw + b


# --- OIP v2 (the request shape of backend/src/factor/oip.rs), binary inputs too ---------


class InferInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: Any = None
    parameters: dict | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict | None = None


class InferRequest(BaseModel):
    id: str | None = None
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = None


def _binary(p: dict | None) -> bool:
    return bool(p and p.get("binary_data"))


HEADER_LENGTH = "inference-header-content-length"


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request, with Triton's binary tensor data extension for inputs: with the
    header, the body's first N bytes are the JSON and the rest the data of the inputs
    that carry `binary_data_size`, in order (FP32 little-endian; BYTES as a 4-byte
    little-endian length and that many bytes). Outputs stay JSON."""
    binary = b""
    if header_length is not None:
        # isascii: Starlette decodes headers as latin-1, and "²".isdigit() is true.
        if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
            raise BadRequest("Inference-Header-Content-Length: not a length within the body")
        n = int(header_length)
        body, binary = body[:n], body[n:]
    try:
        req = InferRequest.model_validate_json(body)
    except ValidationError as e:
        raise BadRequest(f"bad request: {e.errors()[:3]}") from None
    off = 0
    for inp in req.inputs:
        size = (inp.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if header_length is None:
            raise BadRequest("binary_data_size without an Inference-Header-Content-Length header")
        if type(size) is not int or size < 0 or off + size > len(binary):
            raise BadRequest(f"{inp.name}: binary_data_size {size!r} beyond the binary data")
        # As Tacit: `data` absent or an empty list goes with binary data; anything else
        # (an explicit null included) is refused.
        if "data" in inp.model_fields_set and inp.data != []:
            raise BadRequest(f"{inp.name}: both data and binary_data_size")
        chunk, off = binary[off:off + size], off + size
        if inp.datatype == "FP32":
            if size % 4:
                raise BadRequest(f"{inp.name}: binary_data_size {size} is not whole FP32 values")
            inp.data = np.frombuffer(chunk, dtype="<f4")
        elif inp.datatype == "BYTES":
            items, i = [], 0
            while i < len(chunk):
                k = int.from_bytes(chunk[i:i + 4], "little")
                if i + 4 > len(chunk) or i + 4 + k > len(chunk):
                    raise BadRequest(f"{inp.name}: a BYTES element is cut short")
                try:
                    items.append(chunk[i + 4:i + 4 + k].decode("utf-8"))
                except UnicodeDecodeError:
                    raise BadRequest(f"{inp.name}: a BYTES element is not UTF-8") from None
                i += 4 + k
            inp.data = items
        else:
            raise BadRequest(f"{inp.name}: binary data of datatype {inp.datatype}")
    if off != len(binary):
        raise BadRequest(f"{len(binary) - off} bytes of binary data that no input declares")
    return req


def _features(inp: InferInput, dim: int) -> np.ndarray:
    if inp.datatype != "FP32":
        raise BadRequest(f"features: datatype {inp.datatype} (expected FP32)")
    if len(inp.shape) != 2 or inp.shape[0] < 1 or inp.shape[1] < 1:
        raise BadRequest(f"features: shape {inp.shape} (expected [n, {dim}])")
    n, d = inp.shape
    if d != dim:
        raise BadRequest(f"features: {d} values per row, the model takes {dim}")
    if n > MAX_ROWS:
        raise BadRequest(f"features: {n} rows, at most {MAX_ROWS} per request")
    try:
        x = np.asarray(inp.data, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):
        raise BadRequest("features: not an array of numbers") from None
    if x.size != n * d:
        raise BadRequest(f"features: {x.size} values for shape [{n}, {d}]")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)  # as Tacit does: a value beyond float32 becomes inf
    if not np.isfinite(x).all():
        raise BadRequest("features: not all finite numbers")
    return x.reshape(n, d)


def infer(model: Model, req: InferRequest) -> list[dict]:
    x = template = None
    if len(req.inputs) > 2:
        raise BadRequest("expected the inputs `features` and optionally `template`")
    for inp in req.inputs:
        if _binary(inp.parameters):
            raise BadRequest("the binary tensor data extension is not supported")
        if inp.name == "features":
            x = _features(inp, model.dim)
        elif inp.name == "template":
            if inp.datatype != "BYTES":
                raise BadRequest(f"template: datatype {inp.datatype} (expected BYTES)")
            data = inp.data
            while isinstance(data, list) and len(data) == 1:
                data = data[0]
            if not isinstance(data, str):
                raise BadRequest("template: expected one string")
            template = model.parse_template(data)
        else:
            raise BadRequest(f"unknown input {inp.name!r} (expected features, template)")
    if x is None:
        raise BadRequest("missing input `features`")
    allowed = ["llr", "raw"] if template is not None else ["embedding"]
    names = allowed if req.outputs is None else [o.name for o in req.outputs]
    for o in req.outputs or []:
        if _binary(o.parameters) or o.name not in allowed:
            raise BadRequest(f"unknown output {o.name!r} (available: {', '.join(allowed)})")
    n = x.shape[0]
    if template is None:
        e = model.embed(model.transform(x)).astype(np.float32)
        return [{"name": "embedding", "shape": [n, model.k], "datatype": "FP32",
                 "data": e.reshape(-1).tolist()}]
    raw, llr = model.score(template, x)
    values = {"raw": raw.astype(np.float32), "llr": llr.astype(np.float32)}
    return [{"name": k, "shape": [n], "datatype": "FP32", "data": values[k].tolist()}
            for k in names]


def create_app(model: Model) -> FastAPI:
    app = FastAPI(title="tacit-torch-peer")

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, e: BadRequest):
        return JSONResponse({"error": str(e)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError):
        return JSONResponse({"error": f"bad request: {e.errors()[:3]}"}, status_code=400)

    @app.get("/v2/health/live")
    async def live():
        return {}

    @app.get("/v2/health/ready")
    async def ready():
        return {}

    @app.get("/v2/models/{name}")
    async def model_meta(name: str):
        if name != model.factor:
            return JSONResponse({"error": f"unknown model {name!r}"}, status_code=404)
        return {"name": name, "versions": [model.version], "platform": f"pytorch-{torch.__version__}"}

    # `async def` on purpose: the work is a few hundred microseconds of CPU, and with one
    # worker process per core a thread-pool hop would only add overhead.
    @app.post("/v2/models/{name}/infer")
    async def infer_route(name: str, request: Request):
        if name != model.factor:
            return JSONResponse({"error": f"unknown model {name!r}"}, status_code=404)
        req = parse_request(await request.body(), request.headers.get(HEADER_LENGTH))
        out = {"model_name": name, "model_version": model.version, "outputs": infer(model, req)}
        if req.id is not None:
            out["id"] = req.id
        return out

    return app


def app_from_env() -> FastAPI:
    """The app for `uvicorn --factory tacit_peer:app_from_env`: each worker process sets
    its torch threads and loads the model once."""
    threads = int(os.environ.get("PEER_TORCH_THREADS", "1"))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    path = os.environ.get("PEER_MODEL")
    if not path:
        raise SystemExit("PEER_MODEL: path of the model JSON (tacit-backend model-export) is required")
    return create_app(Model(path))

