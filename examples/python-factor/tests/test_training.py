"""Population training of the py-keystroke model: d' fitted on people, the gate, the
registry."""

import json
import os
import tempfile
import unittest

import numpy as np

from pyfactor.model import Model, TrainError, gate, split_people, train_population
from pyfactor.registry import Registry


def population(rng, people, n=30, spread=0.01, dim=31):
    """{user: [n, dim]}: people around their own centres."""
    return {
        f"u{p}": np.clip(rng.uniform(0.08, 0.3, dim) + rng.normal(0, spread, (n, dim)), 0.0, 1.0).astype(np.float32)
        for p in range(people)
    }


class Training(unittest.TestCase):
    def test_dprime_is_fitted_from_the_people(self):
        rng = np.random.default_rng(5)
        by_user = population(rng, 20)
        current = Model({"dprime": 1.0})
        cfg, report = train_population(current, by_user, 0.3, 1)
        # Centres spread far more than one person's vectors: a large separation.
        self.assertGreater(cfg["dprime"], 3.0)
        self.assertEqual(report["data"]["train_people"] + report["data"]["gate_people"], 20)
        self.assertEqual(report["data"]["dprime_before"], 1.0)
        g = report["gate"]
        self.assertTrue(g["passed"], g["reasons"])
        self.assertEqual([p["target_far"] for p in g["candidate"]["operating_points"]], [0.01, 0.05])
        # A fitted d' turns more genuine vectors into accepts than the timid prior did.
        frr_new = g["candidate"]["operating_points"][0]["frr"]
        frr_old = g["current"]["operating_points"][0]["frr"]
        self.assertLess(frr_new, frr_old)
        json.dumps(report)  # JSON-ready

    def test_overlapping_people_get_no_large_separation(self):
        # People whose centres differ by little more than their own spread: a
        # difference of medians would claim a large d' from the many far impostors,
        # while C_llr weighs the near ones.
        rng = np.random.default_rng(8)
        base = rng.uniform(0.08, 0.3, 31)
        by_user = {
            f"u{p}": np.clip(base + rng.normal(0, 0.01, 31) + rng.normal(0, 0.01, (30, 31)), 0, 1).astype(np.float32)
            for p in range(16)
        }
        cfg, report = train_population(Model({}), by_user, 0.3, 1)
        for point in report["gate"]["candidate"]["operating_points"]:
            self.assertLess(point["far"], 3 * point["target_far"] + 0.02, point)

    def test_identical_people_give_a_small_separation(self):
        rng = np.random.default_rng(6)
        centre = rng.uniform(0.08, 0.3, 31)
        by_user = {f"u{p}": np.clip(centre + rng.normal(0, 0.01, (30, 31)), 0, 1).astype(np.float32) for p in range(12)}
        cfg, _ = train_population(Model({}), by_user, 0.3, 1)
        self.assertLess(cfg["dprime"], 1.0)

    def test_the_gate_refuses_a_model_that_accepts_impostors(self):
        cand = {"people": 5, "operating_points": [{"target_far": 0.01, "far": 0.2, "frr": 0.0, "impostor_attempts": 1000, "genuine_attempts": 100}]}
        cur = {"people": 5, "operating_points": [{"target_far": 0.01, "far": 0.01, "frr": 0.1, "impostor_attempts": 1000, "genuine_attempts": 100}]}
        g = gate(cand, cur)
        self.assertFalse(g["passed"])
        self.assertTrue(any("FAR" in r for r in g["reasons"]), g["reasons"])

    def test_too_few_people(self):
        rng = np.random.default_rng(7)
        with self.assertRaises(TrainError):
            train_population(Model({}), population(rng, 4), 0.3, 1)
        with self.assertRaises(TrainError):
            split_people(["a", "b", "c", "d", "e"], 0.3, 1)

    def test_split_is_people_disjoint_and_seeded(self):
        users = [f"u{i}" for i in range(20)]
        tr, ga = split_people(users, 0.3, 1)
        self.assertEqual((len(tr), len(ga)), (14, 6))
        self.assertFalse(set(tr) & set(ga))
        self.assertEqual(split_people(users, 0.3, 1), (tr, ga))


class Registering(unittest.TestCase):
    def test_register_and_promote(self):
        with tempfile.TemporaryDirectory() as d:
            model_file = os.path.join(d, "model.json")
            reg = Registry(os.path.join(d, "reg"), model_file)
            report = {"data": {"train_people": 1}, "gate": {"passed": True}}
            m1 = reg.register(Model({}).describe(), report, "py-keystroke")
            self.assertEqual((m1["version"], m1["model_version"], m1["parent"]), (1, "v1", None))
            reg.promote(1)
            self.assertEqual(Model(json.load(open(model_file))).version, "v1")
            m2 = reg.register(Model({}).describe(), report, "py-keystroke")
            self.assertEqual((m2["version"], m2["parent"]), (2, 1))
            self.assertEqual(reg.versions(), [1, 2])
            self.assertEqual(reg.served(), 1)

    def test_no_model_file_no_promotion(self):
        with tempfile.TemporaryDirectory() as d:
            reg = Registry(d, None)
            with self.assertRaises(ValueError):
                reg.promote(1)


if __name__ == "__main__":
    unittest.main()
