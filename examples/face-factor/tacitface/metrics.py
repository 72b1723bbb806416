"""Error rates, in the shape of the Rust evaluation reports
(backend/models/src/eval/metrics.rs): EER, DET points, the operating points at the
target false-accept rates with a 95% Wilson interval and what they allow one to say."""

import math

import numpy as np

TARGET_FARS = (0.001, 0.01, 0.05)


def det_points(genuine, impostor):
    """[(far, frr)] at every threshold (scores: higher = more genuine), far descending."""
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    i = np.sort(np.asarray(impostor, dtype=np.float64))
    if len(g) == 0 or len(i) == 0:
        return []
    thr = np.unique(np.concatenate([g, i, [np.inf]]))
    far = (len(i) - np.searchsorted(i, thr, side="left")) / len(i)
    frr = np.searchsorted(g, thr, side="left") / len(g)
    return [(float(a), float(b)) for a, b in zip(far, frr)]


def eer(genuine, impostor):
    """Equal error rate: where FAR and FRR cross (the mean of the two at the closest
    threshold)."""
    pts = det_points(genuine, impostor)
    if not pts:
        return float("nan")
    far, frr = min(pts, key=lambda p: (abs(p[0] - p[1]), p[0] + p[1]))
    return (far + frr) / 2


def far_at_frr(genuine, impostor, frr_target):
    pts = [p for p in det_points(genuine, impostor) if p[1] <= frr_target]
    return min((p[0] for p in pts), default=1.0)


def frr_at_far(genuine, impostor, far_target):
    pts = [p for p in det_points(genuine, impostor) if p[0] <= far_target]
    return min((p[1] for p in pts), default=1.0)


def thin(pts, n=400):
    step = max(1, math.ceil(len(pts) / n))
    out = pts[::step]
    if pts and out[-1] != pts[-1]:
        out.append(pts[-1])
    return out


def wilson(k, n):
    if n == 0:
        return [0.0, 1.0]
    z, p = 1.96, k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [max(c - h, 0.0), min(c + h, 1.0)]


def operating_points(genuine, impostor):
    """genuine / impostor: lists of (estimated FAR, calibration floor) per attempt; an
    attempt is accepted at target t when its estimated FAR is at most t."""
    floors = sorted(f for _, f in impostor)
    floor = floors[len(floors) // 2] if floors else float("nan")
    out = []
    for t in TARGET_FARS:
        ia = sum(1 for e, _ in impostor if e <= t)
        ga = sum(1 for e, _ in genuine if e <= t)
        far = ia / len(impostor) if impostor else float("nan")
        if floor > t:
            status = "calibration_cannot_support"
        elif len(impostor) * t < 10:
            status = "too_few_attempts"
        elif 0.5 * t <= far <= 1.5 * t:
            status = "within"
        else:
            status = "outside"
        out.append(
            {
                "target_far": t,
                "genuine_attempts": len(genuine),
                "impostor_attempts": len(impostor),
                "far": far,
                "far_interval": wilson(ia, len(impostor)),
                "frr": 1 - ga / len(genuine) if genuine else float("nan"),
                "calibration_floor": floor,
                "status": status,
            }
        )
    return out
