"""The face factor's parts: image reading and its bounds, calibration, metrics, the
evaluation on a folder (real faces from ../shared/data when present, skipped clearly
when not)."""

import io
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
from PIL import Image

from tacitface import calibration, evaluate, images, metrics
from tacitface.embed import REPLAY_BITS, DetectionFailure, embed, hamming, simhash

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("TACIT_DATA_DIR") or os.path.join(HERE, "..", "..", "..", "..", "shared", "data")
ORL = os.path.join(DATA, "face", "orl-att")


def encode(a, fmt):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


class Images(unittest.TestCase):
    def test_formats_by_content_not_name(self):
        rng = np.random.default_rng(1)
        a = rng.integers(0, 255, (60, 50, 3), dtype=np.uint8)
        for fmt in ("PNG", "JPEG", "GIF", "PPM"):
            got = images.decode(encode(a, fmt))
            self.assertEqual(got.shape, (60, 50, 3), fmt)
        grey = rng.integers(0, 255, (40, 30), dtype=np.uint8)
        self.assertEqual(images.decode(encode(grey, "PNG")).shape, (40, 30, 3))

    def test_large_images_are_downscaled(self):
        a = np.zeros((2000, 1000, 3), dtype=np.uint8)
        self.assertEqual(max(images.decode(encode(a, "PNG")).shape[:2]), images.MAX_SIDE)

    def test_bad_input_is_refused_with_a_reason(self):
        for data in (b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40):
            with self.assertRaises(images.ImageError):
                images.decode(data)
        with self.assertRaises(images.ImageError):
            images.decode(b"x" * (images.MAX_BYTES + 1))
        with self.assertRaises(images.ImageError):
            images.decode(encode(np.zeros((8, 8, 3), dtype=np.uint8), "PNG"))

    def test_decompression_bombs_are_refused(self):
        # A tiny PNG whose header claims 10,000 x 10,000 pixels.
        big = Image.new("L", (10_000, 10_000))
        buf = io.BytesIO()
        big.save(buf, format="PNG", optimize=True)
        with self.assertRaises(images.ImageError):
            images.decode(buf.getvalue())


class Detection(unittest.TestCase):
    def test_no_face_is_a_detection_failure(self):
        flat = np.full((120, 100, 3), 128, dtype=np.uint8)
        with self.assertRaises(DetectionFailure) as e:
            embed(flat)
        self.assertEqual(e.exception.kind, "no_face")

    def test_simhash_tells_near_duplicates_apart_from_others(self):
        rng = np.random.default_rng(2)
        a = rng.integers(0, 255, (64, 64)).astype(np.float64)
        noisy = np.clip(a + rng.normal(0, 2, a.shape), 0, 255)
        other = rng.integers(0, 255, (64, 64)).astype(np.float64)
        self.assertEqual(simhash(a), simhash(a.copy()))
        # Brightness and contrast changes do not move it (the face is standardised).
        self.assertEqual(simhash(a), simhash(a * 0.5 + 20))
        self.assertLessEqual(hamming(simhash(a), simhash(noisy)), REPLAY_BITS)
        self.assertGreater(hamming(simhash(a), simhash(other)), 16)


class Calibrating(unittest.TestCase):
    def test_llr_separates_and_is_calibrated(self):
        rng = np.random.default_rng(3)
        g = rng.normal(0.5, 0.1, 2000)
        i = rng.normal(0.8, 0.1, 20000)
        pairs = [(k % 50, (k // 50) % 49) for k in range(len(i))]
        cal = calibration.Calibration.fit(g, i, pairs)
        self.assertLess(cal.b, 0, "closer is more genuine")
        # Calibrated: C_llr well below 1 bit, and far below an overconfident scaling.
        c = calibration.cllr(cal.llr(g), cal.llr(i))
        self.assertLess(c, 0.6)
        self.assertGreater(calibration.cllr(5 * cal.llr(g), 5 * cal.llr(i)), c)
        # The estimated FAR is the impostor tail, never below the floor.
        self.assertAlmostEqual(float(cal.estimated_far(-1e9)[0]), 1.0)
        self.assertEqual(float(cal.estimated_far(1e9)[0]), cal.floor)
        self.assertGreater(cal.floor, 0)
        json.dumps(cal.to_json())

    def test_one_lookalike_pair_cannot_lower_the_floor(self):
        # The ten highest impostor LLRs all come from one pair of people.
        llr = np.concatenate([np.full(10, 5.0), np.linspace(-10, 0, 990)])
        pairs = [("a", "b")] * 10 + [(k, k + 1) for k in range(990)]
        cal = calibration.Calibration(0.0, -1.0, llr, pairs)
        self.assertAlmostEqual(cal.floor, 14 / 1000)

    def test_separable_calibration_people_give_a_finite_slope(self):
        g = np.linspace(0.2, 0.4, 200)
        i = np.linspace(0.6, 1.0, 2000)
        a, b = calibration.fit_logistic(g, i)
        self.assertTrue(np.isfinite([a, b]).all())
        self.assertLess(b, 0)
        self.assertLess(abs(a + b * 0.2), 30, "a bounded LLR where the data run out")

    def test_a_saved_model_reads_back(self):
        rng = np.random.default_rng(4)
        g, i = rng.normal(0.5, 0.1, 500), rng.normal(0.8, 0.1, 5000)
        cal = calibration.Calibration.fit(g, i, [(k % 20, k // 20 % 19) for k in range(len(i))])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.json")
            with open(path, "w") as f:
                json.dump(dict(cal.to_json(), format="tacit-face-model/1", trained_on="x"), f)
            back = calibration.Calibration.load(path)
            self.assertEqual((back.a, back.b, back.floor), (cal.a, cal.b, cal.floor))
            # Histogram bins of 0.25: the estimated FAR agrees to about a bin.
            for x in (-2.0, 0.0, 1.0):
                self.assertAlmostEqual(float(back.estimated_far(x + 0.25)[0]), float(cal.estimated_far(x + 0.25)[0]), delta=0.05)
            with open(path, "w") as f:
                json.dump({"format": "other"}, f)
            with self.assertRaises(SystemExit):
                calibration.Calibration.load(path)

    def test_needs_both_classes(self):
        with self.assertRaises(ValueError):
            calibration.fit_logistic([], [1.0])


class Metrics(unittest.TestCase):
    def test_eer_and_operating_points(self):
        self.assertEqual(metrics.eer([2, 3, 4], [0, 1]), 0.0)
        self.assertAlmostEqual(metrics.eer([1, 2, 3, 4], [0, 0.5, 1.5, 3.5]), 0.25, places=6)
        ops = metrics.operating_points([(0.001, 0.001)] * 10, [(0.5, 0.001)] * 990 + [(0.005, 0.001)] * 10)
        by = {p["target_far"]: p for p in ops}
        self.assertEqual(by[0.01]["far"], 0.01)
        self.assertEqual(by[0.01]["status"], "within")
        self.assertEqual(by[0.001]["status"], "too_few_attempts")
        self.assertEqual(by[0.01]["frr"], 0.0)


@unittest.skipUnless(os.path.isdir(ORL), f"SKIPPED: no face data at {ORL} (../shared/data/face)")
class RealFaces(unittest.TestCase):
    """Eight ORL people, copied as files of several formats and without extensions."""

    def test_eval_on_a_folder_of_mixed_formats(self):
        tmp = tempfile.mkdtemp(prefix="tacitface-")
        try:
            for n, p in enumerate([f"s{i}" for i in range(1, 9)]):
                os.makedirs(os.path.join(tmp, p))
                for k in range(1, 11):
                    src = os.path.join(ORL, p, f"{k}.pgm")
                    im = Image.open(src)
                    fmt = ("PNG", "JPEG", "GIF", None)[(n + k) % 4]
                    dst = os.path.join(tmp, p, f"img{k}")
                    if fmt is None:
                        shutil.copy(src, dst + ".pgm")
                    else:
                        im.save(dst, format=fmt)  # no extension
            with open(os.path.join(tmp, "s1", "notes.txt"), "w") as f:
                f.write("not an image")
            out = os.path.join(tmp, "report.json")

            class Args:
                data, enrol, seed, json = tmp, 5, 1, out

            r = evaluate.run(Args)
            with open(out) as f:
                saved = json.load(f)
            self.assertEqual(set(saved), {"dataset", "people", "samples", "skipped", "settings", "seconds", "results"})
            self.assertEqual(saved["samples"], 81)
            self.assertTrue(any("notes.txt" in s and "not an image" in s for s in saved["skipped"]), saved["skipped"])
            want = {"protocol", "method", "level", "impostors", "people", "eer_mean", "eer_sd", "far_at_frr5",
                    "frr_at_far1", "pooled_eer", "per_person_eer", "det", "operating_points"}
            for row in saved["results"]:
                self.assertEqual(set(row), want)
            enrol = r["results"][0]
            self.assertEqual(enrol["protocol"], "enrol-5")
            self.assertLess(enrol["pooled_eer"], 0.05)
            self.assertLess(r["results"][1]["pooled_eer"], 0.05)
            self.assertEqual([p["target_far"] for p in enrol["operating_points"]], [0.001, 0.01, 0.05])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
