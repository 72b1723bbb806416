"""From an image to a face embedding: detection with a margin, 5-point landmarks and
alignment, dlib's 128-d ResNet embedding (the `face_recognition` package and its model
files), and the quality measures the factor refuses bad captures on.

Tight crops (a face filling the frame, as in ORL) defeat dlib's HOG detector, which
needs some context around a face: a border of MARGIN x the image's longer side, the
edge pixels repeated, is added before detection (on ORL this took the all-pairs EER from
9.1%, with the whole image as the face box, to 0.33%). A face that is not found even
with a finer search (the image upsampled once more) is a detection failure, reported
as such, never silently skipped.
"""

import threading
from dataclasses import dataclass

import numpy as np

# dlib's detector, shape predictors and network are module-level objects of
# face_recognition, not safe to use from several threads at once: the service's
# concurrent requests gave the same frame landmarks a pixel apart (and replay hashes 4
# bits apart) until every use went through this lock.
_DLIB = threading.Lock()

MARGIN = 0.25
# Refusals: a face smaller than this (pixels, in the normalised image), too dark or too
# bright on average, or without detail (the variance of its Laplacian: a blurred or
# flat crop), does not give a trustworthy embedding.
MIN_FACE_PX = 40
MIN_BRIGHTNESS, MAX_BRIGHTNESS = 25.0, 235.0
MIN_SHARPNESS = 5.0


class DetectionFailure(ValueError):
    """No usable face in an image: `reason` says which check failed."""

    def __init__(self, reason, kind):
        super().__init__(reason)
        self.kind = kind  # "no_face", "too_small", "too_dark", "too_bright", "blurred"


@dataclass
class Face:
    """One face: the embedding and what was measured on the capture."""

    embedding: np.ndarray  # float64 [128]
    quality: float  # 0..1
    box: tuple  # (top, right, bottom, left) in the normalised image
    image_hash: int  # 64-bit SimHash of the aligned face (replay checks)


def _lib():
    # Imported on first use: loading dlib's models takes a second and 100 MB.
    import face_recognition

    return face_recognition


def _grey(a):
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def sharpness(grey):
    """Variance of the 4-neighbour Laplacian."""
    g = grey.astype(np.float64)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var()) if lap.size else 0.0


# The replay hash: the face aligned on its 5 landmarks (dlib's face chip, CHIP px
# square), grey, standardised, then the signs of HASH_BITS fixed random projections
# (SimHash: the Hamming distance of two hashes estimates the angle between the two
# aligned faces). The same frame presented again, even re-encoded or rescaled, lands
# within a few bits; two captures of one person mostly lie far apart, because pose,
# light and expression move more pixels than re-encoding does. Measured on ORL (18
# people, 6 images each; examples/face-factor/README.md): no genuine pair within
# REPLAY_BITS, while 52% of JPEG q85 re-encodings, 27% of 0.9x rescaled q60 copies and
# 17% of 1.3x rotated copies of an image were. An identical frame is always 0 bits away.
# 3 bits catches more copies (65%, 34%, 29%), but two ORL captures of one sitting can be
# 4 bits apart, and the phone's re-encoding moves a hash by a bit or so: a false replay
# costs a genuine user a reject, so the margin is kept. The hash keeps 64 bits of
# a 4,096-pixel face: the face cannot be drawn back from it.
CHIP = 64
HASH_BITS = 64
REPLAY_BITS = 2
_PROJECTION = np.random.default_rng(0x7AC17).standard_normal((HASH_BITS, CHIP * CHIP))


def simhash(chip_grey):
    """64-bit SimHash of a standardised CHIP x CHIP grey face."""
    g = np.asarray(chip_grey, dtype=np.float64).reshape(-1)
    g = (g - g.mean()) / (g.std() + 1e-9)
    bits = (_PROJECTION @ g) > 0
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def aligned_chip(padded, box):
    """The face in `padded` aligned on its 5 landmarks, CHIP x CHIP grey."""
    import dlib
    from face_recognition import api

    t, r, b, l = box
    shape = api.pose_predictor_5_point(padded, dlib.rectangle(l, t, r, b))
    return _grey(np.asarray(dlib.get_face_chip(padded, shape, size=CHIP, padding=0.1), dtype=np.float64))


def hamming(a, b):
    return (a ^ b).bit_count()


def detect(a):
    """The largest face's box (top, right, bottom, left) in `a` (RGB uint8), or raises
    DetectionFailure."""
    fr = _lib()
    h, w = a.shape[:2]
    m = int(MARGIN * max(h, w))
    padded = np.pad(a, ((m, m), (m, m), (0, 0)), mode="edge")
    for upsample in (1, 2):
        boxes = fr.face_locations(padded, number_of_times_to_upsample=upsample, model="hog")
        if boxes:
            break
    else:
        raise DetectionFailure("no face found", "no_face")
    t, r, b, l = max(boxes, key=lambda x: (x[2] - x[0]) * (x[1] - x[3]))
    return padded, (t, r, b, l), m


def embed(a):
    """The Face in image `a` (RGB uint8 [h, w, 3], as images.decode gives), or raises
    DetectionFailure. One image at a time per process (the lock above)."""
    with _DLIB:
        return _embed(a)


def _embed(a):
    fr = _lib()
    padded, (t, r, b, l), m = detect(a)
    side = min(b - t, r - l)
    if side < MIN_FACE_PX:
        raise DetectionFailure(f"face of {side} px, at least {MIN_FACE_PX}", "too_small")
    crop = _grey(padded[max(t, 0) : b, max(l, 0) : r])
    brightness = float(crop.mean())
    if brightness < MIN_BRIGHTNESS:
        raise DetectionFailure(f"face too dark (mean {brightness:.0f})", "too_dark")
    if brightness > MAX_BRIGHTNESS:
        raise DetectionFailure(f"face too bright (mean {brightness:.0f})", "too_bright")
    sharp = sharpness(crop)
    if sharp < MIN_SHARPNESS:
        raise DetectionFailure(f"face without detail (sharpness {sharp:.1f})", "blurred")
    enc = fr.face_encodings(padded, known_face_locations=[(t, r, b, l)], num_jitters=1, model="small")
    if not enc:
        raise DetectionFailure("no landmarks found", "no_face")
    quality = min(1.0, side / 120.0) * min(1.0, sharp / 100.0)
    box = (t - m, r - m, b - m, l - m)
    image_hash = simhash(aligned_chip(padded, (t, r, b, l)))
    return Face(np.asarray(enc[0], dtype=np.float64), float(quality), box, image_hash)
