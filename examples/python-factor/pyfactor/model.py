"""The `py-keystroke` model: a one-class scaled-Manhattan detector (median / MAD) on
fixed-text keystroke vectors, with a cohort-free calibration.

Enrolment (`enrol`, n >= min_samples vectors of the model's dimension):
  * centre m = per-feature median, scale s = max(1.4826 * MAD, scale_floor) per feature;
  * distance d(x) = mean_i |x_i - m_i| / s_i (the scaled Manhattan distance);
  * genuine distance distribution, without any other person: k-fold cross-fitting
    (k = min(5, n), vector j in fold j mod k, each fold scored by a detector fitted on
    the other folds); of t = ln(d + 1e-6) keep mu = median(t) and
    sigma = max(1.4826 * MAD(t), sigma_floor).
  The template holds m, s, mu, sigma and the sample count: statistics only, never an
  enrolment vector.

Scoring: z = (ln(d(x) + 1e-6) - mu) / sigma; raw = -z (higher = more genuine, in units of
the user's own genuine spread: "user-normalised", where the Rust factors normalise by a
cohort) and

    llr = d' * raw + d'^2 / 2        (natural log)

which is the exact log-likelihood ratio of an equal-variance Gaussian model of the
log-distance: genuine ~ N(mu, sigma), impostor ~ N(mu + d' sigma, sigma). The one number
that a cohort would otherwise give, the separation d', is a documented prior instead:
2.6, from the scaled-Manhattan detector's published equal-error rate on the CMU
keystroke benchmark (Killourhy & Maxion 2009, EER 0.096: d' = 2 * Phi^-1(1 - 0.096)).
So llr = 0 half way between the two means (the equal-error point of that model),
+d'^2/2 at the user's typical distance. It needs no other person's data, which is the
point: a factor that can be deployed before any cohort exists.

Embedding (no template): there is no population network in this factor, so the
embedding is a fixed, model-free transform: e = u / |u| with
u_i = sign(x_i) * ln(1 + |x_i| / 0.05) (timings in seconds), of dimension k = dim.
"""

import math

import numpy as np

from . import payload

NAME = "py-keystroke"
TEMPLATE_FORMAT = "py-keystroke-template/1"
_EPS = 1e-6
_MAD_TO_SD = 1.4826
_EMBED_TAU = 0.05


class ModelConfigError(ValueError):
    """A model configuration (artifact) that cannot be used."""


class TemplateError(ValueError):
    """A template that does not belong to this model or is malformed."""


class EnrolError(ValueError):
    """Too few (or unusable) enrolment vectors."""


def _as_finite(v):
    """v as a finite float if it is a JSON number (not a bool) that fits one, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:  # an integer beyond the float range
        return None
    return f if math.isfinite(f) else None


def _number(cfg, key, default, lo, hi, integer=False):
    v = cfg.get(key, default)
    f = _as_finite(v)
    if f is None:
        raise ModelConfigError(f"{key} must be a finite number")
    if integer and not isinstance(v, int):
        raise ModelConfigError(f"{key} must be an integer")
    if not lo <= f <= hi:
        raise ModelConfigError(f"{key} = {v} outside [{lo}, {hi}]")
    return v


class Model:
    """One loaded model version (immutable once built: requests hold a reference)."""

    def __init__(self, cfg):
        if not isinstance(cfg, dict):
            raise ModelConfigError("the model configuration must be a JSON object")
        unknown = set(cfg) - {"name", "version", "dim", "min_samples", "dprime", "scale_floor", "sigma_floor"}
        if unknown:
            raise ModelConfigError(f"unknown keys {sorted(unknown)}")
        name = cfg.get("name", NAME)
        if name != NAME:
            raise ModelConfigError(f"model name {name!r}: this service serves {NAME!r}")
        version = cfg.get("version", "1")
        if not isinstance(version, str) or not 1 <= len(version) <= 64 or not version.isprintable():
            raise ModelConfigError("version must be a printable string of 1..64 characters")
        self.name = NAME
        self.version = version
        self.dim = _number(cfg, "dim", 31, 4, 3 * payload.KEYSTROKE_FIXED_MAX_KEYS - 2, integer=True)
        if payload.fixed_text_keys(self.dim) is None:
            raise ModelConfigError(f"dim {self.dim} is not a fixed-text dimension (3n - 2, 2 <= n <= 128)")
        self.min_samples = _number(cfg, "min_samples", 5, 3, 4096, integer=True)
        self.dprime = float(_number(cfg, "dprime", 2.6, 0.1, 10.0))
        self.scale_floor = float(_number(cfg, "scale_floor", 1e-3, 1e-6, 1.0))
        self.sigma_floor = float(_number(cfg, "sigma_floor", 0.1, 1e-3, 10.0))
        lo, hi = payload.fixed_text_bounds(self.dim)
        self.lo = np.asarray(lo, dtype=np.float32)
        self.hi = np.asarray(hi, dtype=np.float32)

    def describe(self):
        return {
            "name": self.name,
            "version": self.version,
            "dim": self.dim,
            "min_samples": self.min_samples,
            "dprime": self.dprime,
        }

    # -- validation -----------------------------------------------------------------

    def check_features(self, x):
        """x: float32 array [n, dim] of finite values. Raises ValueError if a value is
        outside the keystroke-fixed schema's plausible range."""
        bad = (x < self.lo) | (x > self.hi)
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            name, lo, hi = payload.FIXED_TEXT_RANGES[c % 3]
            raise ValueError(f"features[{r}][{c}] ({name}) = {float(x[r, c])} outside [{lo}, {hi}]")

    def parse_template(self, t):
        """Validates a template (a dict, as enrol returns it) and returns its arrays."""
        if not isinstance(t, dict):
            raise TemplateError("a template is a JSON object")
        want = {"format", "model", "dim", "samples", "median", "scale", "mu", "sigma"}
        if set(t) != want:
            raise TemplateError(f"template keys must be {sorted(want)}")
        if t["format"] != TEMPLATE_FORMAT or t["model"] != self.name:
            raise TemplateError(f"not a {self.name} template ({TEMPLATE_FORMAT})")
        if t["dim"] != self.dim or isinstance(t["dim"], bool):
            raise TemplateError(f"template of dimension {t['dim']!r}, the model's is {self.dim}")
        s = t["samples"]
        if isinstance(s, bool) or not isinstance(s, int) or s < self.min_samples:
            raise TemplateError("samples must be an integer >= min_samples")
        arrays = []
        for key in ("median", "scale"):
            v = t[key]
            if not isinstance(v, list) or len(v) != self.dim:
                raise TemplateError(f"{key} must be a list of {self.dim} numbers")
            a = [_as_finite(e) for e in v]
            if any(e is None for e in a):
                raise TemplateError(f"{key} must be a list of {self.dim} finite numbers")
            arrays.append(np.asarray(a, dtype=np.float64))
        if (arrays[1] <= 0).any():
            raise TemplateError("scale values must be > 0")
        mu, sigma = _as_finite(t["mu"]), _as_finite(t["sigma"])
        if mu is None or sigma is None:
            raise TemplateError("mu and sigma must be finite numbers")
        if sigma <= 0:
            raise TemplateError("sigma must be > 0")
        return arrays[0], arrays[1], mu, sigma

    # -- the detector ---------------------------------------------------------------

    def _fit(self, x):
        med = np.median(x, axis=0)
        mad = np.median(np.abs(x - med), axis=0) * _MAD_TO_SD
        return med, np.maximum(mad, self.scale_floor)

    @staticmethod
    def _distance(x, med, scale):
        return np.mean(np.abs(x - med) / scale, axis=1)

    def enrol(self, x):
        """x: [n, dim] (validated). Returns the template (a JSON-ready dict)."""
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        if n < self.min_samples:
            raise EnrolError(f"enrolment needs at least {self.min_samples} vectors, got {n}")
        k = min(5, n)
        folds = np.arange(n) % k
        d = np.empty(n)
        for f in range(k):
            held = folds == f
            med, scale = self._fit(x[~held])
            d[held] = self._distance(x[held], med, scale)
        t = np.log(d + _EPS)
        mu = float(np.median(t))
        sigma = max(float(np.median(np.abs(t - mu))) * _MAD_TO_SD, self.sigma_floor)
        med, scale = self._fit(x)
        return {
            "format": TEMPLATE_FORMAT,
            "model": self.name,
            "dim": self.dim,
            "samples": int(n),
            "median": [float(v) for v in med],
            "scale": [float(v) for v in scale],
            "mu": mu,
            "sigma": sigma,
        }

    def score(self, template, x):
        """Returns (llr, raw) arrays (float64) for x [n, dim] against a template dict."""
        med, scale, mu, sigma = self.parse_template(template)
        d = self._distance(np.asarray(x, dtype=np.float64), med, scale)
        raw = -(np.log(d + _EPS) - mu) / sigma
        llr = self.dprime * raw + self.dprime**2 / 2
        return llr, raw

    def embed(self, x):
        """The model-free L2-normalised embedding [n, dim]."""
        x = np.asarray(x, dtype=np.float64)
        u = np.sign(x) * np.log1p(np.abs(x) / _EMBED_TAU)
        norm = np.linalg.norm(u, axis=1, keepdims=True)
        e = np.where(norm > 1e-12, u / np.where(norm > 1e-12, norm, 1.0), 1.0 / math.sqrt(self.dim))
        return e

    def score_result(self, template, x):
        """The job API's score result: {"scores", "mean_llr", "samples"}."""
        llr, _ = self.score(template, x)
        return {"scores": [float(v) for v in llr], "mean_llr": float(np.mean(llr)), "samples": int(len(llr))}

    def enrol_result(self, x):
        """The job API's enrol result: {"template", "samples"}."""
        t = self.enrol(x)
        return {"template": t, "samples": t["samples"]}


# -- population training ------------------------------------------------------------------
#
# The model's one population parameter is the separation d' (above: a published prior
# until there is data). Training fits it on people: each training person with enough
# vectors enrols on the first half of theirs (in upload order) and is probed with the
# second half (genuine) and with the other training people's vectors (impostors). d' is
# the value that minimises the calibration loss C_llr (Bruemmer & du Preez 2006: the
# mean log-loss of the LLRs as probabilities, genuine and impostor halves weighted
# equally) over a grid of 0.1..10. Unlike a difference of means, C_llr punishes the
# few impostors who are close to a person with a large LLR, so on people who are hard
# to tell apart the fitted separation stays small instead of claiming a rate the
# data does not give. The gate then judges the candidate and the
# model in service on people held out from training, at the operating points the
# gateway decides on (accept when e^-llr <= target FAR, the bound a factor without
# impostor histograms gives).

TARGET_FARS = (0.01, 0.05)
# One-sided z beyond which a candidate's rate counts as worse than the current one's.
WORSE_Z = 2.33
# Most impostor vectors drawn from one other person (bounds the work: n^2 people pairs).
_IMPOSTOR_PER_PERSON = 20


class TrainError(ValueError):
    """A training set that cannot train or judge a model (too few people or vectors)."""


def split_people(users, gate_share, seed):
    """(train, gate) user lists, people-disjoint, drawn by the seed."""
    order = sorted(users)
    np.random.default_rng(seed).shuffle(order)
    gate_n = max(2, round(len(order) * gate_share))
    if len(order) - gate_n < 4:
        raise TrainError(f"{len(order)} people with enough vectors: training needs at least 4 and the gate {gate_n}")
    return sorted(order[gate_n:]), sorted(order[:gate_n])


def _halves(model, by_user, users):
    """{user: (enrol vectors, probe vectors)} of the users with enough vectors."""
    out = {}
    for u in users:
        x = by_user[u]
        half = len(x) // 2
        if half >= model.min_samples and len(x) - half >= 1:
            out[u] = (x[:half], x[half:])
    return out


def _scores(model, halves, rng):
    """(genuine llr, impostor llr, genuine raw, impostor raw) over the people in `halves`."""
    g_llr, i_llr, g_raw, i_raw = [], [], [], []
    users = sorted(halves)
    for u in users:
        t = model.enrol(halves[u][0])
        llr, raw = model.score(t, halves[u][1])
        g_llr.extend(llr)
        g_raw.extend(raw)
        for v in users:
            if v == u:
                continue
            probe = halves[v][1]
            if len(probe) > _IMPOSTOR_PER_PERSON:
                probe = probe[rng.choice(len(probe), _IMPOSTOR_PER_PERSON, replace=False)]
            llr, raw = model.score(t, probe)
            i_llr.extend(llr)
            i_raw.extend(raw)
    return (np.asarray(g_llr), np.asarray(i_llr), np.asarray(g_raw), np.asarray(i_raw))


def judge(model, by_user, users, seed):
    """The model's realised rates on `users` at each target: {"people", "operating_points"}."""
    halves = _halves(model, by_user, users)
    if len(halves) < 2:
        raise TrainError(f"{len(halves)} gate people with enough vectors: the gate needs at least 2")
    g, i, _, _ = _scores(model, halves, np.random.default_rng(seed))
    points = []
    for t in TARGET_FARS:
        thr = -math.log(t)
        far = float(np.mean(i >= thr))
        frr = float(np.mean(g < thr))
        points.append(
            {
                "target_far": t,
                "far": far,
                "frr": frr,
                "impostor_attempts": int(len(i)),
                "genuine_attempts": int(len(g)),
            }
        )
    return {"people": len(halves), "operating_points": points}


def _worse(a, na, b, nb):
    """Whether rate a (of na trials) is above rate b (of nb) beyond noise: one-sided z."""
    p = (a * na + b * nb) / max(na + nb, 1)
    se = math.sqrt(max(p * (1 - p) * (1 / max(na, 1) + 1 / max(nb, 1)), 1e-12))
    return (a - b) / se > WORSE_Z


def gate(candidate, current):
    """{"passed", "reasons", "candidate", "current"}: the candidate passes when at no
    target its FAR or FRR is worse than the current model's beyond noise, and its FAR
    is not above 1.5x the target beyond noise."""
    reasons = []
    for k, c in enumerate(candidate["operating_points"]):
        t, n = c["target_far"], c["impostor_attempts"]
        if _worse(c["far"], n, 1.5 * t, 10**9):
            reasons.append(f"target {t}: FAR {c['far']:.4f} above 1.5x the target")
        if current is not None:
            o = current["operating_points"][k]
            if _worse(c["far"], n, o["far"], o["impostor_attempts"]):
                reasons.append(f"target {t}: FAR {c['far']:.4f} worse than {o['far']:.4f} in service")
            if _worse(c["frr"], c["genuine_attempts"], o["frr"], o["genuine_attempts"]):
                reasons.append(f"target {t}: FRR {c['frr']:.4f} worse than {o['frr']:.4f} in service")
    passed = not reasons
    if passed:
        reasons.append("not worse than the model in service beyond noise" if current else "within the targets (no model in service)")
    return {"passed": passed, "reasons": reasons, "candidate": candidate, "current": current}


_DPRIME_GRID = np.linspace(0.1, 10.0, 199)


def cllr(g_llr, i_llr):
    """C_llr in bits: 0.5 mean log2(1 + e^-llr) over genuine + 0.5 mean log2(1 + e^llr)
    over impostor scores (0 perfect, 1 an uninformative 0, more when miscalibrated)."""
    return 0.5 * np.mean(np.logaddexp(0, -g_llr)) / math.log(2) + 0.5 * np.mean(np.logaddexp(0, i_llr)) / math.log(2)


def fit_dprime(g_raw, i_raw):
    """The d' of the grid whose LLRs d' * raw + d'^2 / 2 have the least C_llr."""
    losses = [cllr(d * g_raw + d * d / 2, d * i_raw + d * d / 2) for d in _DPRIME_GRID]
    return float(_DPRIME_GRID[int(np.argmin(losses))])


def train_population(current, by_user, gate_share=0.3, seed=1):
    """Fits d' on the training people of `by_user` ({user: [n, dim] vectors in upload
    order}, of `current`'s dimension), judges the candidate and `current` on the gate
    people. Returns (candidate configuration, report): report has "data" (people,
    vectors) and "gate"."""
    users = [u for u in by_user if len(by_user[u]) >= 2 * current.min_samples]
    train, gate_users = split_people(users, gate_share, seed)
    halves = _halves(current, by_user, train)
    _, _, g_raw, i_raw = _scores(current, halves, np.random.default_rng(seed))
    if len(g_raw) == 0 or len(i_raw) == 0:
        raise TrainError("no genuine or impostor scores among the training people")
    dprime = fit_dprime(g_raw, i_raw)
    cfg = dict(current.describe())
    cfg.update(dprime=dprime, scale_floor=current.scale_floor, sigma_floor=current.sigma_floor)
    candidate = Model(cfg)
    report = {
        "data": {
            "train_people": len(train),
            "gate_people": len(gate_users),
            "windows": int(sum(len(by_user[u]) for u in train)),
            "dprime": dprime,
            "dprime_before": current.dprime,
        },
        "gate": gate(judge(candidate, by_user, gate_users, seed), judge(current, by_user, gate_users, seed)),
    }
    return cfg, report
