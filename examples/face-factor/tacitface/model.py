"""The face model a service loads: the calibration (`python -m tacitface calibrate`),
and templates of several embeddings per user with their quality.

Features are dlib's 128-d face embeddings (unit-length vectors; the phone's images are
turned into them once, and only they are kept), either bare (DIM values) or as the
gateway stores them, face records (RECORD_DIM values: the embedding, the image's quality,
its 64-bit replay hash as four 16-bit chunks; shared/protocol/PROTOCOL.md). A template is
`{"format": "tacit-face-template/1", "embeddings": [[128 numbers]...], "quality": [...],
"hashes": ["16 hex digits"...]}` (hashes only when enrolled from face records), at most
MAX_TEMPLATE embeddings, the best-quality ones. A probe's score is its smallest distance
to the template's embeddings; its LLR is the calibration's; an attempt of n probes is
judged on their median distance.

A probe whose replay hash lies within REPLAY_BITS of an enrolment image's is that image
presented again (a replay, see embed.py): its LLR is REPLAY_LLR, and so is the
attempt's.
"""

import json
import math

import numpy as np

from .calibration import Calibration
from .embed import REPLAY_BITS, hamming

NAME = "face"
DIM = 128
HASH_CHUNKS = 4
RECORD_DIM = DIM + 1 + HASH_CHUNKS
# The LLR of a replayed image: odds of 1 : 22,000 against the enrolled person, stronger
# than any calibrated face score, so that the fusion rejects whatever else it holds.
REPLAY_LLR = -10.0
TEMPLATE_FORMAT = "tacit-face-template/1"
MAX_TEMPLATE = 10
MIN_ENROL = 1
# dlib's embeddings have components well inside [-1, 1]; anything outside is not one.
MAX_ABS = 1.0


class TemplateError(ValueError):
    """A template that is not this model's or is malformed."""


class FaceModel:
    def __init__(self, path):
        cal = Calibration.load(path)
        with open(path, "rb") as f:
            raw = f.read()
        import hashlib

        self.cal = cal
        self.name = NAME
        self.dim = DIM
        self.version = hashlib.sha256(raw).hexdigest()[:16]
        self.trained_on = cal.source

    def check_features(self, x):
        if x.shape[1] == RECORD_DIM:
            q = x[:, DIM]
            if ((q < 0) | (q > 1)).any():
                raise ValueError(f"a quality (value {DIM}) outside 0..1")
            h = x[:, DIM + 1 :]
            if ((h < 0) | (h > 65535) | (h != np.floor(h))).any():
                raise ValueError(f"the image hash (values {DIM + 1}..{RECORD_DIM - 1}) must be whole numbers 0..65535")
            x = x[:, :DIM]
        if np.abs(x).max(initial=0.0) > MAX_ABS:
            r, c = (int(v) for v in np.argwhere(np.abs(x) > MAX_ABS)[0])
            raise ValueError(f"features[{r}][{c}] = {float(x[r, c])} is not a face embedding value (|v| <= {MAX_ABS})")

    @staticmethod
    def split(x):
        """(embeddings, quality or None, hashes or None) of bare embeddings or face
        records."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] != RECORD_DIM:
            return x, None, None
        chunks = x[:, DIM + 1 :].astype(np.int64)
        # Python ints: the top chunk shifted by 48 overflows a signed 64-bit integer.
        hashes = [(int(c[0]) << 48) | (int(c[1]) << 32) | (int(c[2]) << 16) | int(c[3]) for c in chunks]
        return x[:, :DIM], x[:, DIM], hashes

    def enrol(self, x, quality=None):
        x, q_rec, hashes = self.split(x)
        if len(x) < MIN_ENROL:
            raise ValueError("enrolment needs at least one embedding")
        if quality is None:
            quality = q_rec
        q = np.ones(len(x)) if quality is None else np.asarray(quality, dtype=np.float64)
        keep = sorted(np.argsort(-q, kind="stable")[:MAX_TEMPLATE])
        t = {
            "format": TEMPLATE_FORMAT,
            "embeddings": [[float(v) for v in x[i]] for i in keep],
            "quality": [float(q[i]) for i in keep],
        }
        if hashes is not None:
            t["hashes"] = [f"{hashes[i]:016x}" for i in keep]
        return t

    def parse_template(self, t):
        keys = {"format", "embeddings", "quality"}
        if not isinstance(t, dict) or not keys <= set(t) <= keys | {"hashes"}:
            raise TemplateError("a face template has the keys format, embeddings, quality (and hashes)")
        if t["format"] != TEMPLATE_FORMAT:
            raise TemplateError(f"not a {TEMPLATE_FORMAT} template")
        e, q = t["embeddings"], t["quality"]
        if not isinstance(e, list) or not 1 <= len(e) <= MAX_TEMPLATE or not isinstance(q, list) or len(q) != len(e):
            raise TemplateError(f"1..{MAX_TEMPLATE} embeddings with one quality each")
        try:
            a = np.asarray(e, dtype=np.float64)
            qa = np.asarray(q, dtype=np.float64)
        except (ValueError, TypeError):
            raise TemplateError("embeddings must be lists of numbers") from None
        if a.shape != (len(e), DIM) or not np.isfinite(a).all() or not np.isfinite(qa).all():
            raise TemplateError(f"embeddings must be finite vectors of {DIM}")
        if np.abs(a).max() > MAX_ABS:
            raise TemplateError("embedding values outside a face embedding's range")
        return a

    @staticmethod
    def template_hashes(t):
        h = t.get("hashes")
        if h is None:
            return []
        if not isinstance(h, list) or len(h) != len(t["embeddings"]) or not all(isinstance(v, str) and len(v) == 16 for v in h):
            raise TemplateError("hashes: one 16-hex-digit hash per embedding")
        try:
            return [int(v, 16) for v in h]
        except ValueError:
            raise TemplateError("hashes: one 16-hex-digit hash per embedding") from None

    def replayed(self, template, x):
        """Per probe: whether it is an enrolment image presented again (all False for
        bare embeddings or a template without hashes)."""
        _, _, hashes = self.split(x)
        known = self.template_hashes(template)
        if hashes is None or not known:
            return np.zeros(len(x), dtype=bool)
        return np.array([min(hamming(h, k) for k in known) <= REPLAY_BITS for h in hashes])

    def distances(self, template, x):
        t = self.parse_template(template)
        x, _, _ = self.split(x)
        return np.min(np.linalg.norm(x[:, None, :] - t[None, :, :], axis=2), axis=1)

    def score(self, template, x):
        """(llr, raw = -distance) per probe; a replayed probe's LLR is REPLAY_LLR."""
        d = self.distances(template, x)
        llr = np.asarray(self.cal.llr(d), dtype=np.float64).copy()
        llr[self.replayed(template, x)] = REPLAY_LLR
        return llr, -d

    def attempt(self, template, x):
        """The attempt's LLR: of the probes' median distance; REPLAY_LLR when any probe
        is a replay."""
        if self.replayed(template, x).any():
            return REPLAY_LLR
        d = self.distances(template, x)
        return float(self.cal.llr(float(np.median(d))))

    def embed(self, x):
        x, _, _ = self.split(x)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.where(n > 1e-12, x / np.where(n > 1e-12, n, 1.0), 1.0 / math.sqrt(DIM))
