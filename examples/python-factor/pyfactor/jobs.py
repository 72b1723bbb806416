"""The job store: one JSON file per job in the job directory.

* A job is written `running` (fsynced, atomically renamed) before `202 {"jobId"}` goes
  out, and rewritten `completed` or `failed` when it ends.
* On start-up every job still `running` belonged to a process that died: it becomes
  `failed` with "interrupted by a restart" -- never `running` forever.
* A finished job expires `ttl_s` seconds after it finished (TACIT_JOB_TTL_S, default
  3600): /status then answers 404, and the file is deleted (on access and by a sweep).
* One process per job directory: an exclusive lock on `DIR/.lock` (released by the
  kernel when the process dies, even by SIGKILL) keeps a second instance out.
"""

import fcntl
import json
import os
import re
import threading
import time
import uuid

JOB_ID = re.compile(r"^[0-9a-f]{32}$")


class JobDirLocked(RuntimeError):
    """Another live process owns the job directory."""


class JobStore:
    def __init__(self, directory, ttl_s):
        self.dir = os.path.abspath(directory)
        self.ttl_s = float(ttl_s)
        os.makedirs(self.dir, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JobDirLocked(f"job directory {self.dir} is in use by another process") from None
        self._mu = threading.Lock()
        self.recovered = self._recover()

    def close(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- files ----------------------------------------------------------------------

    def _path(self, job_id):
        return os.path.join(self.dir, job_id + ".json")

    def _write(self, rec):
        path = self._path(rec["id"])
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rec, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _read(self, job_id):
        try:
            with open(self._path(job_id)) as f:
                rec = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable: treated as unknown
        return rec if isinstance(rec, dict) and rec.get("id") == job_id else None

    def _delete(self, job_id):
        try:
            os.unlink(self._path(job_id))
        except FileNotFoundError:
            pass

    def _recover(self):
        """Marks the jobs of a dead process failed; drops leftovers and expired jobs."""
        n = 0
        now = time.time()
        for name in os.listdir(self.dir):
            if name.endswith(".json.tmp"):
                os.unlink(os.path.join(self.dir, name))
                continue
            if not name.endswith(".json") or not JOB_ID.match(name[:-5]):
                continue
            job_id = name[:-5]
            rec = self._read(job_id)
            if rec is None:
                self._delete(job_id)
            elif rec.get("status") == "running":
                rec.update(status="failed", error="interrupted by a restart", finished_at=now)
                self._write(rec)
                n += 1
            elif self._expired(rec, now):
                self._delete(job_id)
        return n

    def _expired(self, rec, now):
        fin = rec.get("finished_at")
        return isinstance(fin, (int, float)) and now - fin > self.ttl_s

    # -- API --------------------------------------------------------------------------

    def create(self, kind):
        job_id = uuid.uuid4().hex
        rec = {"id": job_id, "kind": kind, "status": "running", "created_at": time.time()}
        with self._mu:
            self._write(rec)
        return job_id

    def finish(self, job_id, result=None, error=None):
        with self._mu:
            rec = self._read(job_id) or {"id": job_id, "created_at": time.time()}
            if error is None:
                rec.update(status="completed", result=result)
            else:
                rec.update(status="failed", error=str(error))
            rec["finished_at"] = time.time()
            self._write(rec)

    def get(self, job_id):
        """The job's status answer, or None for an unknown or expired id."""
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            return None
        with self._mu:
            rec = self._read(job_id)
            if rec is None:
                return None
            if self._expired(rec, time.time()):
                self._delete(job_id)
                return None
        status = rec.get("status")
        if status == "completed":
            return {"status": "completed", "result": rec.get("result")}
        if status == "failed":
            return {"status": "failed", "error": rec.get("error", "failed")}
        return {"status": "running"}

    def sweep(self):
        """Deletes expired jobs; returns how many."""
        n = 0
        now = time.time()
        with self._mu:
            for name in os.listdir(self.dir):
                if name.endswith(".json") and JOB_ID.match(name[:-5]):
                    rec = self._read(name[:-5])
                    if rec is not None and self._expired(rec, now):
                        self._delete(name[:-5])
                        n += 1
        return n
