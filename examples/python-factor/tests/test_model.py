"""The py-keystroke model: detector, calibration, templates, configuration."""

import json
import math
import unittest

import numpy as np

from pyfactor.model import EnrolError, Model, ModelConfigError, TemplateError


def person(rng, dim=31, n=40, centre=None, spread=0.01):
    centre = rng.uniform(0.08, 0.3, dim) if centre is None else centre
    return np.clip(centre + rng.normal(0, spread, (n, dim)), 0.0, 1.0).astype(np.float32), centre


class Detector(unittest.TestCase):
    def setUp(self):
        self.m = Model({})
        self.rng = np.random.default_rng(3)

    def test_enrol_template_shape_and_json(self):
        x, _ = person(self.rng)
        t = self.m.enrol(x)
        self.assertEqual(t["samples"], 40)
        self.assertEqual(len(t["median"]), 31)
        self.assertTrue(all(s >= self.m.scale_floor for s in t["scale"]))
        self.assertGreaterEqual(t["sigma"], self.m.sigma_floor)
        self.assertEqual(json.loads(json.dumps(t)), t)  # JSON-ready
        self.m.parse_template(t)

    def test_template_holds_statistics_only(self):
        x, _ = person(self.rng, n=6)
        t = self.m.enrol(x)
        self.assertEqual(set(t), {"format", "model", "dim", "samples", "median", "scale", "mu", "sigma"})
        # per feature a median and a scale, four scalars: no room for a vector
        self.assertEqual(len(t["median"]) + len(t["scale"]), 2 * 31)

    def test_calibration_formula(self):
        x, c = person(self.rng)
        t = self.m.enrol(x)
        y, _ = person(self.rng, centre=c, n=10)
        llr, raw = self.m.score(t, y)
        d = self.m.dprime
        np.testing.assert_allclose(llr, d * raw + d * d / 2)
        # raw = -(ln(distance) - mu) / sigma
        med, scale = np.asarray(t["median"]), np.asarray(t["scale"])
        dist = np.mean(np.abs(y - med) / scale, axis=1)
        np.testing.assert_allclose(raw, -(np.log(dist + 1e-6) - t["mu"]) / t["sigma"], rtol=1e-9)

    def test_genuine_mostly_accepted_impostors_rejected(self):
        x, c = person(self.rng, n=60)
        t = self.m.enrol(x)
        g, _ = person(self.rng, centre=c, n=400)
        i, _ = person(self.rng, n=400)
        lg, _ = self.m.score(t, g)
        li, _ = self.m.score(t, i)
        self.assertGreater(np.mean(lg > 0), 0.8)
        self.assertLess(np.mean(li > 0), 0.05)
        # at the user's typical distance, llr is near d'^2 / 2
        self.assertAlmostEqual(float(np.median(lg)), self.m.dprime**2 / 2, delta=1.5)

    def test_enrol_needs_min_samples(self):
        x, _ = person(self.rng, n=4)
        with self.assertRaisesRegex(EnrolError, "at least 5"):
            self.m.enrol(x)
        self.m.enrol(person(self.rng, n=5)[0])

    def test_identical_vectors_do_not_divide_by_zero(self):
        x = np.full((10, 31), 0.1, np.float32)
        t = self.m.enrol(x)
        llr, raw = self.m.score(t, x)
        self.assertTrue(np.isfinite(llr).all() and np.isfinite(raw).all())

    def test_embedding_is_unit_norm(self):
        x, _ = person(self.rng, n=5)
        e = self.m.embed(x)
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-12)
        e0 = self.m.embed(np.zeros((2, 31), np.float32))
        np.testing.assert_allclose(np.linalg.norm(e0, axis=1), 1.0, atol=1e-12)

    def test_bad_templates(self):
        t = self.m.enrol(person(self.rng)[0])
        cases = {
            "not an object": [1],
            "missing key": {k: v for k, v in t.items() if k != "mu"},
            "extra key": {**t, "x": 1},
            "other model": {**t, "model": "gait"},
            "other dim": {**t, "dim": 28},
            "short median": {**t, "median": t["median"][:-1]},
            "string in scale": {**t, "scale": ["a"] + t["scale"][1:]},
            "bool in median": {**t, "median": [True] + t["median"][1:]},
            "zero scale": {**t, "scale": [0.0] + t["scale"][1:]},
            "nan mu": {**t, "mu": float("nan")},
            "negative sigma": {**t, "sigma": -1.0},
            "too few samples": {**t, "samples": 2},
            "samples bool": {**t, "samples": True},
            "huge int mu": {**t, "mu": 10**400},
            "huge int in median": {**t, "median": [10**400] + t["median"][1:]},
        }
        for name, bad in cases.items():
            with self.subTest(name), self.assertRaises(TemplateError):
                self.m.parse_template(bad)

    def test_degenerate_template_is_refused_by_infer(self):
        # A positive but vanishing sigma passes the template checks and then scores
        # beyond FP32:
        # the factor answers 422 degenerate_template, never null scores.
        from pyfactor.app import ApiError, infer

        x, _ = person(self.rng, n=8)
        t = self.m.enrol(x)
        x = x[:3]
        bad = {**t, "sigma": 1e-300}
        req = {
            "inputs": [
                {"name": "features", "datatype": "FP32", "shape": [3, 31],
                 "data": x.reshape(-1).tolist()},
                {"name": "template", "datatype": "BYTES", "shape": [1], "data": [json.dumps(bad)]},
            ]
        }
        with self.assertRaises(ApiError) as cm:
            infer(self.m, req)
        self.assertEqual((cm.exception.status, cm.exception.code), (422, "degenerate_template"))
        req["inputs"][1]["data"] = [json.dumps(t)]
        self.assertEqual([o["name"] for o in infer(self.m, req)["outputs"]], ["llr", "raw"])

    def test_out_of_range_features(self):
        x = np.full((2, 31), 0.1, np.float32)
        self.m.check_features(x)
        x[1, 2] = -0.5  # up-down may be negative
        self.m.check_features(x)
        x[1, 0] = -0.5
        with self.assertRaisesRegex(ValueError, r"features\[1\]\[0\] \(hold\)"):
            self.m.check_features(x)


class Config(unittest.TestCase):
    def test_defaults(self):
        m = Model({})
        self.assertEqual((m.name, m.version, m.dim, m.min_samples), ("py-keystroke", "1", 31, 5))
        self.assertTrue(math.isclose(m.dprime, 2.6))

    def test_other_dimension(self):
        m = Model({"dim": 4, "version": "x"})
        t = m.enrol(np.full((5, 4), 0.1, np.float32))
        self.assertEqual(t["dim"], 4)
        with self.assertRaises(TemplateError):
            Model({}).parse_template(t)

    def test_bad_configs(self):
        for cfg in (
            [],
            {"dim": 30},
            {"dim": 31.0},
            {"dim": 1000},
            {"name": "gait"},
            {"version": ""},
            {"version": 2},
            {"dprime": float("inf")},
            {"dprime": 10**400},
            {"min_samples": 1},
            {"unknown": 1},
        ):
            with self.subTest(cfg=cfg), self.assertRaises(ModelConfigError):
                Model(cfg)


if __name__ == "__main__":
    unittest.main()
