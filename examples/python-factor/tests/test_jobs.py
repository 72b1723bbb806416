"""The job store: restart recovery, expiry, one owner per directory."""

import json
import os
import tempfile
import time
import unittest

from pyfactor.jobs import JobDirLocked, JobStore


class Jobs(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_life_cycle(self):
        s = JobStore(self.dir, 3600)
        a, b = s.create("train"), s.create("input")
        self.assertEqual(s.get(a), {"status": "running"})
        s.finish(a, result={"samples": 3})
        s.finish(b, error="boom")
        self.assertEqual(s.get(a), {"status": "completed", "result": {"samples": 3}})
        self.assertEqual(s.get(b), {"status": "failed", "error": "boom"})
        self.assertIsNone(s.get("0" * 32))
        self.assertIsNone(s.get("../etc/passwd"))
        self.assertIsNone(s.get(None))
        s.close()

    def test_restart_fails_running_jobs_and_keeps_finished_ones(self):
        s = JobStore(self.dir, 3600)
        running, done = s.create("train"), s.create("train")
        s.finish(done, result={"ok": 1})
        s.close()  # the process "dies" here
        with open(os.path.join(self.dir, "0" * 32 + ".json.tmp"), "w") as f:
            f.write("{half a write")
        s2 = JobStore(self.dir, 3600)
        self.assertEqual(s2.recovered, 1)
        self.assertEqual(s2.get(running), {"status": "failed", "error": "interrupted by a restart"})
        self.assertEqual(s2.get(done), {"status": "completed", "result": {"ok": 1}})
        self.assertFalse(any(n.endswith(".tmp") for n in os.listdir(self.dir)))
        s2.close()

    def test_corrupt_job_file_reads_as_unknown(self):
        s = JobStore(self.dir, 3600)
        j = s.create("train")
        with open(os.path.join(self.dir, j + ".json"), "w") as f:
            f.write("not json")
        self.assertIsNone(s.get(j))
        s.close()

    def test_expiry(self):
        s = JobStore(self.dir, 0.2)
        a, b, c = s.create("train"), s.create("train"), s.create("train")
        s.finish(a, result=1)
        s.finish(b, error="x")
        time.sleep(0.3)
        self.assertIsNone(s.get(a))  # expired on access
        self.assertEqual(s.sweep(), 1)  # b swept
        self.assertEqual(s.get(c), {"status": "running"})  # running jobs never expire
        self.assertEqual(sorted(n for n in os.listdir(self.dir) if n.endswith(".json")), [c + ".json"])
        s.close()

    def test_expired_results_are_dropped_at_start_up(self):
        s = JobStore(self.dir, 3600)
        a = s.create("train")
        s.finish(a, result=1)
        s.close()
        path = os.path.join(self.dir, a + ".json")
        with open(path) as f:
            rec = json.load(f)
        rec["finished_at"] -= 7200
        with open(path, "w") as f:
            json.dump(rec, f)
        s2 = JobStore(self.dir, 3600)
        self.assertFalse(os.path.exists(path))
        s2.close()

    def test_one_owner_per_directory(self):
        s = JobStore(self.dir, 3600)
        with self.assertRaises(JobDirLocked):
            JobStore(self.dir, 3600)
        s.close()
        JobStore(self.dir, 3600).close()


if __name__ == "__main__":
    unittest.main()
