"""The job store: one JSON file per job in the job directory.

* A job is written `running` (fsynced, atomically renamed) before `202 {"jobId"}` goes
  out, and rewritten `completed` or `failed` when it ends.
* On start-up every job still `running` belonged to a process that died: it becomes
  `failed` with "interrupted by a restart" -- never `running` forever.
* A finished job expires `ttl_s` seconds after it finished (TACIT_JOB_TTL_S, default
  3600): /status then answers 404, and the file is deleted (on access and by a sweep).
* One process per job directory: an exclusive lock on `DIR/.lock` (released by the
  kernel when the process dies, even by SIGKILL) keeps a second instance out.
* A record holds a user's template or scores: files are mode 0600 in a directory of
  mode 0700, and with an at-rest key (TACIT_AT_REST_KEY_FILE) sealed like the gateway's
  blobs, with `jobs/ID` as associated data (a record copied under another id does not
  open).
* At most `max_records` records are kept: the oldest finished ones make room.
"""

import fcntl
import json
import os
import re
import threading
import time
import uuid

from .at_rest import AtRestError

JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def _aad(job_id):
    """The associated data of a sealed record: its id."""
    return f"jobs/{job_id}"


class JobDirLocked(RuntimeError):
    """Another live process owns the job directory."""


class JobStore:
    def __init__(self, directory, ttl_s, at_rest=None, max_records=1000):
        self.dir = os.path.abspath(directory)
        self.ttl_s = float(ttl_s)
        self.at_rest = at_rest
        self.max_records = max(1, int(max_records))
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self._lock_fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
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
        data = json.dumps(rec).encode()
        if self.at_rest is not None:
            data = self.at_rest.seal(_aad(rec["id"]), data)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
            with open(self._path(job_id), "rb") as f:
                data = f.read()
            if self.at_rest is not None:
                data = self.at_rest.open(_aad(job_id), data)
            rec = json.loads(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AtRestError):
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

    def _make_room(self):
        """Deletes the oldest finished records until one more fits under the bound."""
        names = [n for n in os.listdir(self.dir) if n.endswith(".json") and JOB_ID.match(n[:-5])]
        if len(names) < self.max_records:
            return
        finished = []
        for n in names:
            rec = self._read(n[:-5])
            if rec is None:
                self._delete(n[:-5])
            elif rec.get("status") != "running":
                finished.append((rec.get("created_at", 0), n[:-5]))
        finished.sort()
        excess = len(names) - self.max_records + 1
        for _, job_id in finished[:excess]:
            self._delete(job_id)

    def create(self, kind):
        job_id = uuid.uuid4().hex
        rec = {"id": job_id, "kind": kind, "status": "running", "created_at": time.time()}
        with self._mu:
            self._make_room()
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
