"""Scores as the decision needs them: a log-likelihood ratio (natural log, "same person"
vs "someone else") from the distance between a probe's embedding and a template, and
the false-accept rate an LLR stands for on people the calibration saw.

LLR(d) = a + b d, fitted by logistic regression with the genuine and the impostor
attempts weighted equally (so the fitted log-odds are the LLR, not a posterior under
the calibration set's proportions): that minimises C_llr, the calibration loss of
Bruemmer & du Preez (2006). The targets are Platt's (1999): (n+1)/(n+2) for the n
genuine attempts and 1/(m+2) for the m impostor ones instead of 1 and 0, so that
calibration people who are perfectly separated (controlled face sets often are) give a
finite slope that says how much the data can support, not an LLR that grows without
bound. The estimated false-accept rate of an LLR is the share of
the calibration people's impostor attempts at or above it, never below the floor: the
smallest share that at least FLOOR_PAIRS distinct impostor pairs (template person,
probe person) reach, so that one look-alike pair cannot make the factor claim a rate
it has no support for. The same form as the Rust factors' `impostor_llr` histograms.
"""

import json
import math
import os

import numpy as np

FLOOR_PAIRS = 5
BIN = 0.25


def fit_logistic(genuine, impostor, iters=50):
    """(a, b) of LLR = a + b d on distances, classes weighted equally (Newton steps)."""
    g = np.asarray(genuine, dtype=np.float64)
    i = np.asarray(impostor, dtype=np.float64)
    if len(g) == 0 or len(i) == 0:
        raise ValueError("calibration needs genuine and impostor distances")
    x = np.concatenate([g, i])
    # Platt's targets: a separable set must not drive the slope to infinity.
    y = np.concatenate([np.full(len(g), (len(g) + 1) / (len(g) + 2)), np.full(len(i), 1 / (len(i) + 2))])
    w = np.concatenate([np.full(len(g), 0.5 / len(g)), np.full(len(i), 0.5 / len(i))])
    X = np.stack([np.ones_like(x), x], axis=1)
    beta = np.zeros(2)
    for _ in range(iters):
        z = X @ beta
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
        grad = X.T @ (w * (p - y))
        h = X.T @ (X * (w * p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def cllr(genuine_llr, impostor_llr):
    """C_llr in bits (0 perfect, 1 an uninformative LLR of 0)."""
    g = np.asarray(genuine_llr, dtype=np.float64)
    i = np.asarray(impostor_llr, dtype=np.float64)
    return float(0.5 * np.mean(np.logaddexp(0, -g)) / math.log(2) + 0.5 * np.mean(np.logaddexp(0, i)) / math.log(2))


class Calibration:
    """A fitted calibration: the LLR of a distance, and the estimated false-accept rate
    of an LLR with its floor."""

    def __init__(self, a, b, impostor_llr, impostor_pairs):
        self.a, self.b = a, b
        order = np.argsort(-np.asarray(impostor_llr, dtype=np.float64), kind="stable")
        self.impostor_sorted = np.asarray(impostor_llr, dtype=np.float64)[order]  # descending
        n = len(order)
        seen, k = set(), n
        for rank, idx in enumerate(order if impostor_pairs else []):
            seen.add(impostor_pairs[idx])
            if len(seen) >= FLOOR_PAIRS:
                k = rank + 1
                break
        self.floor = k / n if n else 1.0
        self.source = "fitted here"
        self.people = 0

    @classmethod
    def fit(cls, genuine_d, impostor_d, impostor_pairs):
        """From the calibration people's distances (impostor_pairs[i]: the (template
        person, probe person) of impostor attempt i)."""
        a, b = fit_logistic(genuine_d, impostor_d)
        llr = a + b * np.asarray(impostor_d, dtype=np.float64)
        return cls(a, b, llr, list(impostor_pairs))

    def llr(self, d):
        return self.a + self.b * np.asarray(d, dtype=np.float64)

    def estimated_far(self, llr):
        """Share of calibration impostor attempts at or above `llr` (each value), at
        least the floor."""
        llr = np.atleast_1d(np.asarray(llr, dtype=np.float64))
        # impostor_sorted is descending: count of values >= x.
        asc = self.impostor_sorted[::-1]
        above = len(asc) - np.searchsorted(asc, llr, side="left")
        return np.maximum(above / max(len(asc), 1), self.floor)

    def histogram(self):
        """[(bin centre, count)] of the impostor LLRs, bins of BIN (the OIP output
        `impostor_llr`)."""
        centres = np.round(self.impostor_sorted / BIN) * BIN
        vals, counts = np.unique(centres, return_counts=True)
        return [(float(v), int(c)) for v, c in zip(vals, counts)]

    def to_json(self):
        return {"a": self.a, "b": self.b, "floor": self.floor, "impostor_llr": self.histogram()}

    @classmethod
    def load(cls, path):
        """A calibration written by `python -m tacitface calibrate` (the impostor LLRs
        come back as their histogram's bin centres)."""
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
        if not isinstance(m, dict) or m.get("format") != "tacit-face-model/1":
            raise SystemExit(f"{path}: not a tacit-face-model/1 file")
        llr = [c for c, n in m["impostor_llr"] for _ in range(int(n))]
        cal = cls(float(m["a"]), float(m["b"]), llr, [])
        cal.floor = float(m["floor"])
        cal.source = str(m.get("trained_on", os.path.basename(path)))
        return cal
