"""The face factor service over real HTTP on loopback: images in, embeddings out;
enrolment and calibrated scores on embeddings; the factor token; bad input; and no
image written anywhere (files, logs) after a run. Real faces from ../shared/data
(skipped, saying so, without them)."""

import base64
import io
import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python-factor"))  # the toolkit

from tacitface import evaluate  # noqa: E402

DATA = os.environ.get("TACIT_DATA_DIR") or os.path.join(HERE, "..", "..", "..", "..", "shared", "data")
ORL = os.path.join(DATA, "face", "orl-att")


def call(url, body=None, token=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    if data:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            st, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        st, raw = e.code, e.read()
    try:
        return st, json.loads(raw) if raw else None
    except ValueError:
        return st, raw


def calibrated_model(tmp):
    """A model calibrated on ORL people 11..40 (the users of the tests are 1..10),
    written to tmp; its path."""
    sub = os.path.join(tmp, "cal")
    for p in range(11, 41):
        os.makedirs(os.path.join(sub, f"s{p}"))
        for k in range(1, 11):
            os.symlink(os.path.join(ORL, f"s{p}", f"{k}.pgm"), os.path.join(sub, f"s{p}", f"{k}.pgm"))

    class A:
        data, enrol, out = sub, 5, os.path.join(tmp, "face-model.json")

    evaluate.calibrate(A)
    return A.out


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.text = []

    def emit(self, record):
        self.text.append(self.format(record))


@unittest.skipUnless(os.path.isdir(ORL), f"SKIPPED: no face data at {ORL} (../shared/data/face)")
class Service(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import uvicorn

        from tacitface.service import Settings, create_app

        cls.tmp = tempfile.mkdtemp(prefix="tacitface-svc-")
        cls.cwd = os.getcwd()
        os.chdir(cls.tmp)
        model_file = calibrated_model(cls.tmp)
        cls.token = secrets.token_hex(32)
        tf = os.path.join(cls.tmp, "factor.token")
        with open(tf, "w") as f:
            f.write(cls.token)
        os.chmod(tf, 0o600)
        cls.logs = Capture()
        logging.getLogger().addHandler(cls.logs)
        logging.getLogger().setLevel(logging.DEBUG)
        cls.objects = os.path.join(cls.tmp, "objects")
        app = create_app(Settings({
            "FACE_MODEL_FILE": model_file,
            "TACIT_FACTOR_TOKEN_FILE": tf,
            "FACTOR_OBJECTS_DIR": cls.objects,
            "FACTOR_JOB_DIR": os.path.join(cls.tmp, "face-jobs"),
            "FACTOR_REGISTRY_DIR": os.path.join(cls.tmp, "face-models"),
        }))
        # What is on disk once the service started (its job directory): an image sent
        # later must add nothing.
        cls.before = sorted(os.listdir(cls.tmp))
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        cls.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="debug", access_log=True))
        cls.thread = threading.Thread(target=cls.server.run, daemon=True)
        cls.thread.start()
        cls.url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if call(cls.url + "/v2/health/live")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.server.should_exit = True
        cls.thread.join(10)
        logging.getLogger().removeHandler(cls.logs)
        os.chdir(cls.cwd)
        import shutil

        shutil.rmtree(cls.tmp, ignore_errors=True)

    def b64(self, person, k):
        with open(os.path.join(ORL, f"s{person}", f"{k}.pgm"), "rb") as f:
            return base64.b64encode(f.read()).decode()

    def images(self, data):
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(data)], "data": data}]}
        st, r = call(self.url + "/v2/models/face/infer", body, self.token)
        self.assertEqual(st, 200, r)
        out = {o["name"]: o for o in r["outputs"]}
        n = len(data)
        self.assertEqual(out["embedding"]["shape"], [n, 128])
        self.assertEqual(out["quality"]["shape"], [n])
        self.assertEqual(out["image_hash"]["shape"], [n, 4])
        self.assertEqual(out["refusal"]["shape"], [n])
        return out

    def records(self, person, ks, data=None):
        """Face records as the gateway stores them: embedding, quality, hash chunks."""
        out = self.images(data or [self.b64(person, k) for k in ks])
        self.assertEqual(out["refusal"]["data"], [""] * len(ks))
        e, q, h = out["embedding"]["data"], out["quality"]["data"], out["image_hash"]["data"]
        return [e[i * 128 : (i + 1) * 128] + [q[i]] + h[i * 4 : (i + 1) * 4] for i in range(len(ks))]

    def embed(self, person, ks):
        return [r[:128] for r in self.records(person, ks)]

    def score(self, template, feats):
        body = {"inputs": [
            {"name": "features", "datatype": "FP32", "shape": [len(feats), len(feats[0])], "data": [v for r in feats for v in r]},
            {"name": "template", "datatype": "BYTES", "shape": [1], "data": [json.dumps(template)]},
        ]}
        st, r = call(self.url + "/v2/models/face/infer", body, self.token)
        self.assertEqual(st, 200, r)
        return {o["name"]: o for o in r["outputs"]}

    def test_1_enrol_and_score_people_the_calibration_never_saw(self):
        st, md = call(self.url + "/v2/models/face", token=self.token)
        self.assertEqual((st, md["name"], md["parameters"]["trained_on"]), (200, "face", "cal"))
        enrol = self.embed(1, [1, 2, 3, 4, 5])
        st, r = call(self.url + "/output", {"op": "enrol", "features": enrol}, self.token)
        self.assertEqual(st, 200, r)
        template = r["output"]["template"]
        self.assertEqual(len(template["embeddings"]), 5)
        genuine = self.score(template, self.embed(1, [6, 7, 8]))
        impostor = self.score(template, self.embed(2, [6, 7, 8]))
        self.assertTrue(all(v > 0 for v in genuine["llr"]["data"]), genuine["llr"])
        self.assertTrue(all(v < 0 for v in impostor["llr"]["data"]), impostor["llr"])
        self.assertGreater(genuine["attempt_llr"]["data"][0], impostor["attempt_llr"]["data"][0])
        self.assertEqual(genuine["impostor_llr"]["shape"][1], 2)
        self.assertGreater(genuine["impostor_floor"]["data"][0], 0)
        st, r = call(self.url + "/output", {"op": "score", "features": self.embed(1, [9]), "template": template}, self.token)
        self.assertEqual(st, 200, r)
        self.assertGreater(r["output"]["scores"][0], 0)

    def test_5_a_replayed_enrolment_image_is_caught(self):
        from PIL import Image

        enrol = self.records(3, [1, 2, 3, 4, 5])
        st, r = call(self.url + "/output", {"op": "enrol", "features": enrol}, self.token)
        self.assertEqual(st, 200, r)
        template = r["output"]["template"]
        self.assertEqual(len(template["hashes"]), 5)
        # Fresh captures of the same person are genuine, and none is taken for a replay.
        fresh = self.score(template, self.records(3, [6, 7, 8, 9, 10]))
        self.assertEqual(fresh["replayed"]["data"], [0.0] * 5)
        self.assertGreater(fresh["attempt_llr"]["data"][0], 0)
        # An enrolment image sent again: byte for byte, and brightened and re-encoded
        # (lossy re-encodings are caught at the rates README.md gives, not always).
        with open(os.path.join(ORL, "s3", "2.pgm"), "rb") as f:
            im = Image.open(io.BytesIO(f.read())).point(lambda v: min(255, v + 12))
            png = io.BytesIO()
            im.save(png, format="PNG")
        for data in (self.b64(3, 2), base64.b64encode(png.getvalue()).decode()):
            replay = self.score(template, self.records(3, [2], data=[data]) + self.records(3, [7]))
            self.assertEqual(replay["replayed"]["data"], [1.0, 0.0])
            self.assertEqual(replay["llr"]["data"][0], -10.0)
            self.assertEqual(replay["attempt_llr"]["data"][0], -10.0)
        # The bare embedding of the same image carries no hash: scored as a face only.
        bare = self.score(template, self.embed(3, [2]))
        self.assertEqual(bare["replayed"]["data"], [0.0])

    def test_2_bad_input_and_no_face(self):
        u = self.url + "/v2/models/face/infer"
        flat = io.BytesIO()
        from PIL import Image

        Image.new("RGB", (120, 100), (128, 128, 128)).save(flat, format="PNG")
        # Images without a usable face are refused one by one, the others answered.
        out = self.images([base64.b64encode(flat.getvalue()).decode(), self.b64(1, 1), base64.b64encode(b"not an image").decode()])
        self.assertEqual(out["refusal"]["data"], ["no_face", "", "undecodable"])
        self.assertEqual(out["quality"]["data"][0], 0.0)
        self.assertGreater(out["quality"]["data"][1], 0.0)
        cases = [
            ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["%%% not base64"]}]}, 400, None),
            ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [17], "data": [self.b64(1, 1)] * 17}]}, 413, None),
            ({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 128], "data": [2.0] * 128}]}, 400, None),
            ({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 127], "data": [0.0] * 127}]}, 400, None),
            # Face records: quality outside 0..1, a hash chunk that is no whole 16-bit number.
            ({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 133], "data": [0.0] * 128 + [1.5, 1, 2, 3, 4]}]}, 400, None),
            ({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 133], "data": [0.0] * 128 + [0.5, 1.5, 2, 3, 4]}]}, 400, None),
            ({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 133], "data": [0.0] * 128 + [0.5, 65536, 2, 3, 4]}]}, 400, None),
            ({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 128], "data": [0.0] * 128},
                         {"name": "template", "datatype": "BYTES", "shape": [1], "data": ['{"format": "other"}']}]}, 400, None),
            ({"inputs": []}, 400, None),
        ]
        st, r = call(self.url + "/output", {"op": "enrol", "features": [[0.0] * 128], "quality": [True]}, self.token)
        self.assertEqual(st, 400, r)
        st, r = call(self.url + "/output", {"op": "enrol", "features": [[0.0] * 128], "quality": [1, 2]}, self.token)
        self.assertEqual(st, 400, r)
        for body, want, code in cases:
            st, r = call(u, body, self.token)
            self.assertEqual(st, want, (body["inputs"][:1] and body["inputs"][0]["name"], r))
            self.assertIsInstance(r.get("error"), str)
            if code:
                self.assertEqual(r["code"], code)
        for path, body in (("/v2/models/face/infer", {"inputs": []}), ("/output", {"op": "enrol"}), ("/v2/models/face", None)):
            st, r = call(self.url + path, body, token=None)
            self.assertEqual((st, r["code"]), (401, "unauthorized"))
        self.assertEqual(call(self.url + "/v2/health/live")[0], 200)

    def test_4_an_off_the_shelf_oip_client_agrees(self):
        """scripts/factor_conformance.py (tritonclient[http]) against this service, with
        the venv that has tritonclient (CONFORMANCE_PYTHON; run-tests.sh sets it)."""
        import subprocess

        py = os.environ.get("CONFORMANCE_PYTHON")
        if not py:
            self.assertFalse(os.environ.get("CI"), "CI run without CONFORMANCE_PYTHON")
            self.skipTest("SKIPPED: CONFORMANCE_PYTHON not set (run-tests.sh sets it)")
        tf = os.path.join(self.tmp, "factor.token")
        script = os.path.join(HERE, "..", "..", "..", "scripts", "factor_conformance.py")
        out = subprocess.run(
            [py, script, self.url, "face", "--no-jobs", "--token-file", tf, "--low", "-0.2", "--high", "0.2",
             "--expect-separation"],
            capture_output=True, text=True, timeout=300,
        )
        last = (out.stdout.strip().splitlines() or [""])[-1]
        print(f"conformance: {last}", file=sys.stderr)
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        self.assertIn(" passed, 0 failed", last)

    def test_3_no_image_is_written_anywhere(self):
        # Everything above sent images; nothing new is on disk where the service runs,
        # and no log line holds image data.
        self.embed(3, [1, 2])
        self.assertEqual(sorted(os.listdir(self.tmp)), self.before)
        probes = [self.b64(p, k)[40:80] for p in (1, 2, 3) for k in (1, 2, 6)]
        logs = "\n".join(self.logs.text)
        self.assertTrue(logs, "the server logged something (the check can fail)")
        for p in probes:
            self.assertNotIn(p, logs)


    def job(self, path, body):
        st, r = call(self.url + path, body, self.token)
        self.assertEqual(st, 202, r)
        for _ in range(600):
            st, rec = call(f"{self.url}/status?taskID={r['jobId']}", token=self.token)
            self.assertEqual(st, 200, rec)
            if rec["status"] != "running":
                return rec
            time.sleep(0.1)
        self.fail(f"job {r['jobId']} still running")

    def test_9_the_job_api_works_on_stored_face_records(self):
        from pyfactor import payload as pp

        # The gateway's feature objects: face records of ten people (ORL 11..20), one
        # object per person, as features/USER/OBJECT.
        files = []
        for person in range(11, 21):
            rows = self.records(person, list(range(1, 11)))
            recs = [pp.FeatureRecord(pp.FACE, 1, 1_700_000_000_000 + i, 0, None, r) for i, r in enumerate(rows)]
            key = f"features/user-{person}/0001"
            os.makedirs(os.path.join(self.objects, os.path.dirname(key)), exist_ok=True)
            with open(os.path.join(self.objects, key), "wb") as f:
                f.write(pp.encode(recs))
            files.append(key)
        rec = self.job("/enrol", {"files": files[:1]})
        self.assertEqual(rec["status"], "completed", rec)
        template = rec["result"]["template"]
        self.assertEqual((len(template["embeddings"]), len(template["hashes"])), (10, 10))
        rec = self.job("/input", {"files": files[:2], "template": template})
        self.assertEqual(rec["status"], "completed", rec)
        # Person 11's own records replay the template's images; person 12's do not.
        self.assertEqual((rec["result"]["samples"], rec["result"]["replayed"]), (20, 10))
        rec = self.job("/train", {"files": files, "promote": False, "seed": 3})
        self.assertEqual(rec["status"], "completed", rec)
        res = rec["result"]
        self.assertEqual((res["version"], res["promoted"], res["data"]["gate_people"]), (1, False, 4), res)
        self.assertIsInstance(res["gate"]["passed"], bool)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "face-models", "v1.json")))
        # Too few people to calibrate and judge: a failed job that says why.
        rec = self.job("/train", {"files": files[:5], "promote": False})
        self.assertEqual(rec["status"], "failed", rec)
        self.assertIn("needs at least", rec["error"])
        for path, body in (
            ("/enrol", {}),
            ("/enrol", {"files": ["../etc/passwd"]}),
            ("/enrol", {"files": ["s3://bucket/features/x/1"]}),
            ("/input", {"files": files[:1]}),
            ("/input", {"files": files[:1], "template": {"format": "other"}}),
            ("/train", {"files": files, "gate_share": 0.9}),
            ("/train", {"files": ["other/x/1"]}),
            ("/train", {"files": files, "unknown": 1}),
        ):
            st, r = call(self.url + path, body, self.token)
            self.assertEqual(st, 400, (path, body, r))
        st, r = call(self.url + "/status?taskID=" + "0" * 32, token=self.token)
        self.assertEqual(st, 404, r)
        # A missing object is the job's failure, not the service's.
        rec = self.job("/enrol", {"files": ["features/nobody/1"]})
        self.assertEqual(rec["status"], "failed", rec)
        # Job records hold templates and scores, never an image.
        for name in os.listdir(os.path.join(self.tmp, "face-jobs")):
            with open(os.path.join(self.tmp, "face-jobs", name), "rb") as f:
                blob = f.read()
            self.assertNotIn(b"/9j/", blob)
            self.assertNotIn(self.b64(11, 1)[40:80].encode(), blob)


if __name__ == "__main__":
    unittest.main()
