"""The face model a service loads: the calibration (`python -m tacitface calibrate`),
and templates of several embeddings per user with their quality.

Features are dlib's 128-d face embeddings (unit-length vectors; the phone's images are
turned into them once, and only they are kept). A template is
`{"format": "tacit-face-template/1", "embeddings": [[128 numbers]...], "quality": [...]}`,
at most MAX_TEMPLATE embeddings, the best-quality ones. A probe's score is its smallest
distance to the template's embeddings; its LLR is the calibration's; an attempt of n
probes is judged on their median distance.
"""

import json
import math

import numpy as np

from .calibration import Calibration

NAME = "face"
DIM = 128
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
        if np.abs(x).max(initial=0.0) > MAX_ABS:
            r, c = (int(v) for v in np.argwhere(np.abs(x) > MAX_ABS)[0])
            raise ValueError(f"features[{r}][{c}] = {float(x[r, c])} is not a face embedding value (|v| <= {MAX_ABS})")

    def enrol(self, x, quality=None):
        x = np.asarray(x, dtype=np.float64)
        if len(x) < MIN_ENROL:
            raise ValueError("enrolment needs at least one embedding")
        q = np.ones(len(x)) if quality is None else np.asarray(quality, dtype=np.float64)
        keep = sorted(np.argsort(-q, kind="stable")[:MAX_TEMPLATE])
        return {
            "format": TEMPLATE_FORMAT,
            "embeddings": [[float(v) for v in x[i]] for i in keep],
            "quality": [float(q[i]) for i in keep],
        }

    def parse_template(self, t):
        if not isinstance(t, dict) or set(t) != {"format", "embeddings", "quality"}:
            raise TemplateError("a face template has the keys format, embeddings, quality")
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

    def distances(self, template, x):
        t = self.parse_template(template)
        x = np.asarray(x, dtype=np.float64)
        return np.min(np.linalg.norm(x[:, None, :] - t[None, :, :], axis=2), axis=1)

    def score(self, template, x):
        """(llr, raw = -distance) per probe."""
        d = self.distances(template, x)
        return self.cal.llr(d), -d

    def attempt(self, template, x):
        """The attempt's LLR: of the probes' median distance."""
        d = self.distances(template, x)
        return float(self.cal.llr(float(np.median(d))))

    def embed(self, x):
        x = np.asarray(x, dtype=np.float64)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.where(n > 1e-12, x / np.where(n > 1e-12, n, 1.0), 1.0 / math.sqrt(DIM))
