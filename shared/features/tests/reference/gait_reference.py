#!/usr/bin/env python3
"""Independent numpy/scipy implementation of Tacit's gait pipeline (schema v1).

Used two ways:
  gait_reference.py features IN.bin OUT.json   features of every window (cross-check)
  gait_reference.py fft IN.bin OUT.json        plain and Hann rfft magnitudes of a vector
  gait_reference.py bench IN.bin [REPEATS]     time the whole pipeline (benchmark peer)

IN.bin for `features`/`bench`: little-endian records of (int64 t_ns, 6 x float64:
accel xyz, gyro xyz). For `fft`: float64 values. Written by the Rust tests/benches.

The implementation follows the definitions in shared/features/src/factors/gait.rs but is
written with numpy/scipy primitives (np.interp, scipy.signal.butter/lfilter,
np.fft.rfft, np.correlate, scipy.stats.skew/kurtosis, np.percentile), so agreement
checks the Rust arithmetic against an outside reference.
"""
import json
import sys
import time

import numpy as np
import scipy.signal as sig
import scipy.stats as st

FS = 50.0
N = 256
HOP = 128
FC = 0.3
MAX_GAP_NS = 500_000_000
BANDS = [(0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 6.0), (6.0, 10.0)]
HANN = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N) / N)
B, A = sig.butter(2, FC, fs=FS)
ZI = sig.lfilter_zi(B, A)


def rnd(x):
    """Round half away from zero (Rust's f64::round) for non-negative x."""
    return int(np.floor(x + 0.5))


def load(path):
    rec = np.dtype([("t", "<i8"), ("v", "<f8", (6,))])
    d = np.fromfile(path, dtype=rec)
    return d["t"], d["v"]


def segments(t):
    """Indices where a new segment starts (gap > MAX_GAP_NS); input is clean."""
    cut = np.nonzero(np.diff(t) > MAX_GAP_NS)[0] + 1
    return np.split(np.arange(len(t)), cut)


def resample(t, a):
    step = rnd(1e9 / FS)
    rel = (t - t[0]).astype(np.float64)
    grid = np.arange(0, rel[-1] + 1, step, dtype=np.float64)
    out = np.stack([np.interp(grid, rel, a[:, i]) for i in range(3)], axis=1)
    return t[0] + grid.astype(np.int64), out


def signals(a):
    g = np.stack([sig.lfilter(B, A, a[:, i], zi=ZI * a[0, i])[0] for i in range(3)], axis=1)
    d = a - g
    gn = np.linalg.norm(g, axis=1)
    v = np.where(gn > 1e-9, np.einsum("ij,ij->i", d, g) / np.where(gn > 1e-9, gn, 1.0), 0.0)
    dyn2 = np.einsum("ij,ij->i", d, d)
    h = np.sqrt(np.maximum(dyn2 - v * v, 0.0))
    m = np.linalg.norm(a, axis=1)
    return v, h, m, dyn2


def parab(l, c, r):
    den = l - 2 * c + r
    return float(np.clip(0.5 * (l - r) / den, -0.5, 0.5)) if den < 0 else 0.0


def best_peak(acf, lo, hi):
    hi = min(hi, len(acf) - 2)
    best = None
    for k in range(max(lo, 1), hi + 1):
        if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1]:
            if best is None or acf[k] >= acf[best]:
                best = k
    return best


def find_cycle(acf):
    lo, hi = int(np.ceil(0.25 * FS)), int(np.floor(FS))
    first = best_peak(acf, lo, hi)
    if first is None:
        return None
    half_lo = max(int(np.ceil(0.4 * first)), lo)
    half_hi = int(np.floor(0.6 * first))
    h = best_peak(acf, half_lo, half_hi)
    step = h if (h is not None and half_lo <= half_hi and acf[h] >= 0.4 * acf[first]) else first
    stride = best_peak(acf, rnd(1.6 * step), rnd(2.4 * step))
    if stride is None:
        stride = min(2 * step, len(acf) - 1)
    refined = step + parab(acf[step - 1], acf[step], acf[step + 1])
    return step, stride, FS / refined


def window_features(v, h, m, dyn2):
    df = FS / N
    half = N // 2
    v0, h0, m0 = v - v.mean(), h - h.mean(), m - m.mean()
    p = np.abs(np.fft.rfft(m0 * HANN)) ** 2
    freq = np.arange(half + 1) * df
    klo, khi = int(np.ceil(0.5 / df)), min(int(np.floor(5.0 / df)), half - 1)
    kd = klo + int(np.argmax(p[klo:khi + 1]))
    s = np.sqrt(p[kd - 1:kd + 2])
    dominant = (kd + parab(s[0], s[1], s[2])) * df
    sel = (freq >= 0.5) & (freq < 10.0)
    total = p[sel].sum()
    bands = [p[(freq >= lo) & (freq < hi)].sum() / total if total > 1e-12 else 0.0 for lo, hi in BANDS]
    p1 = p[1:]
    sp = p1.sum()
    if sp > 1e-12:
        q = p1 / sp
        centroid = float((freq[1:] * p1).sum() / sp)
        # Shannon entropy of q, with ln(P + 1e-12) in place of ln P (as the Rust code).
        entropy = float(np.clip(-(q * (np.log(p1 + 1e-12) - np.log(sp))).sum() / np.log(len(p1)), 0, 1))
    else:
        centroid = entropy = 0.0
    flatness = float(np.exp(np.mean(np.log(p1 + 1e-12))) / (p1.mean() + 1e-12))

    r = np.correlate(m0, m0, mode="full")[N - 1:]
    acf = r / r[0] if r[0] > 1e-12 else np.zeros(N)
    cyc = find_cycle(acf)
    if cyc is None:
        cadence = step_reg = stride_reg = 0.0
    else:
        cadence, step_reg, stride_reg = cyc[2], acf[cyc[0]], acf[cyc[1]]
    symmetry = 0.0 if abs(stride_reg) < 1e-6 else float(np.clip(step_reg / stride_reg, -1000, 1000))

    stride_hz = cadence / 2.0
    harmonics = np.zeros(8)
    if cyc is not None:
        for j in range(8):
            b = rnd((j + 1) * stride_hz / df)
            harmonics[j] = np.sqrt(p[b]) if b <= half else 0.0
        if harmonics.sum() > 1e-12:
            harmonics = harmonics / harmonics.sum()

    def hr(x0):
        if cyc is None:
            return 0.0
        mag = np.abs(np.fft.rfft(x0 * HANN))
        even = odd = 0.0
        for j in range(1, 11):
            b = rnd(j * stride_hz / df)
            if b > half:
                break
            if j % 2 == 0:
                even += mag[b]
            else:
                odd += mag[b]
        return 0.0 if odd < 1e-12 else min(even / odd, 1e4)

    f = [cadence, step_reg, stride_reg, symmetry, dominant, *harmonics, hr(v0), hr(h0), *bands,
         centroid, entropy, flatness]
    m_std = 0.0
    for x in (v0, h0, m0):
        std = float(np.sqrt(np.mean(x ** 2)))
        if np.mean(x ** 2) <= 1e-18:
            skew = kurt = 0.0
        else:
            skew = float(st.skew(x, bias=True))
            kurt = float(st.kurtosis(x, fisher=True, bias=True))
        p10, p90 = np.percentile(x, [10, 90])
        f += [std, skew, kurt, p10, p90, x.max() - x.min(), np.mean(np.abs(np.diff(x))) * FS,
              np.sum((x[:-1] < 0) != (x[1:] < 0)) / (N / FS)]
        m_std = std
    sd2 = dyn2.sum()
    f.append(min((v * v).sum() / sd2, 1.0) if sd2 > 1e-12 else 0.0)
    walking = (0.5 <= m_std <= 30.0) and (1.0 <= cadence <= 3.5) and max(step_reg, stride_reg) >= 0.2
    return [float(x) for x in f], bool(walking)


def pipeline(t, vals):
    out = []
    for idx in segments(t):
        if len(idx) == 0:
            continue
        tg, a = resample(t[idx], vals[idx, :3])
        v, h, m, dyn2 = signals(a)
        for s0 in range(0, len(a) - N + 1, HOP):
            sl = slice(s0, s0 + N)
            f, walking = window_features(v[sl], h[sl], m[sl], dyn2[sl])
            out.append({"start_ns": int(tg[s0]), "walking": walking, "features": f})
    return out


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "features":
        t, vals = load(path)
        json.dump({"windows": pipeline(t, vals)}, open(sys.argv[3], "w"))
    elif mode == "fft":
        x = np.fromfile(path, dtype="<f8")
        w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(len(x)) / len(x))
        json.dump({"plain": np.abs(np.fft.rfft(x)).tolist(), "hann": np.abs(np.fft.rfft(x * w)).tolist()},
                  open(sys.argv[3], "w"))
    elif mode == "bench":
        repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
        t, vals = load(path)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            ws = pipeline(t, vals)
            best = min(best, time.perf_counter() - t0)
        print(json.dumps({"seconds": best, "windows": len(ws), "numpy": np.__version__,
                          "scipy": __import__("scipy").__version__}))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
