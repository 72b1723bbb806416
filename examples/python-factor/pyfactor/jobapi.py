"""The job API's machinery, shared by the Python factors (this one and the face factor,
examples/face-factor): jobs run on a bounded pool, recorded in the job store
(`jobs.py`: crash-safe, sealed at rest, expiring), `202 {"jobId"}` when accepted, 503
`jobs_busy` when the service has `max_jobs` in flight, 429 when one caller has
`max_jobs_per_caller`, and `GET /status?taskID=` for the record. What a job computes
is the factor's: `submit` takes a function and the exceptions that are the job's
caller's fault (reported as the job's error, the message as it is); any other
exception is logged and reported as an internal error, never left running.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.responses import JSONResponse

from .jobs import JobStore

log = logging.getLogger("pyfactor")


class Jobs:
    def __init__(self, settings, api_error, failures):
        """settings: job_dir, job_ttl_s, at_rest, max_job_records, job_workers, max_jobs,
        max_jobs_per_caller, test_job_delay_s. api_error: the service's error type
        (status, message, headers, code). failures: the exception types of bad jobs."""
        self.settings = settings
        self.api_error = api_error
        self.failures = tuple(failures)
        self.store = JobStore(settings.job_dir, settings.job_ttl_s, settings.at_rest, settings.max_job_records)
        if self.store.recovered:
            log.warning("%d jobs interrupted by a restart are now failed", self.store.recovered)
        self.executor = ThreadPoolExecutor(max_workers=settings.job_workers, thread_name_prefix="job")
        self._mu = threading.Lock()
        self._training = threading.Lock()
        self._n = 0
        self._by_caller = {}

    def close(self):
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    def _release(self, caller):
        with self._mu:
            self._n -= 1
            left = self._by_caller.get(caller, 1) - 1
            if left > 0:
                self._by_caller[caller] = left
            else:
                self._by_caller.pop(caller, None)

    def _run(self, job_id, fn, caller):
        try:
            if self.settings.test_job_delay_s:
                time.sleep(self.settings.test_job_delay_s)
            result = fn()
            self.store.finish(job_id, result=result)
        except self.failures as e:
            self.store.finish(job_id, error=str(e))
        except Exception as e:  # noqa: BLE001 - a job reports, never hangs
            log.exception("job %s", job_id)
            self.store.finish(job_id, error=f"internal error: {type(e).__name__}")
        finally:
            self._release(caller)

    def submit(self, kind, fn, caller):
        """Records a job of `kind` and runs `fn` for it; the 202 answer."""
        s = self.settings
        with self._mu:
            if self._n >= s.max_jobs:
                raise self.api_error(503, "too many jobs in flight, retry later", {"Retry-After": "5"}, "jobs_busy")
            if self._by_caller.get(caller, 0) >= s.max_jobs_per_caller:
                raise self.api_error(429, "too many jobs of this caller in flight, retry later", {"Retry-After": "2"})
            self._n += 1
            self._by_caller[caller] = self._by_caller.get(caller, 0) + 1
        try:
            job_id = self.store.create(kind)
            self.executor.submit(self._run, job_id, fn, caller)
        except Exception:
            self._release(caller)
            raise
        return JSONResponse({"jobId": job_id}, status_code=202)

    def train_options(self, body, model_file, model_file_var):
        """(promote, gate_share, seed) of a `POST /train` body, every field checked; a
        promotion needs a model file to write (model_file, named model_file_var in the
        error)."""
        err = self.api_error
        unknown = set(body) - {"files", "promote", "gate_share", "seed", "steps"}
        if unknown:
            raise err(400, f"unknown fields {sorted(unknown)}")
        promote = body.get("promote", True)
        if not isinstance(promote, bool):
            raise err(400, "promote must be true or false")
        share = body.get("gate_share", 0.3)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.1 <= share <= 0.5:
            raise err(400, "gate_share must be a number in 0.1..0.5")
        seed = body.get("seed", 1)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise err(400, "seed must be an integer in 0..2^64")
        # Accepted for the contract's sake: the Python factors' training has no steps.
        steps = body.get("steps", 1)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100_000:
            raise err(400, "steps must be an integer in 1..100000")
        if promote and model_file is None:
            raise err(
                409,
                f'this service has no {model_file_var} to promote into: send "promote": false, or set it',
                code="conflict",
            )
        return promote, float(share), seed

    def train(self, body, files, model_file, model_file_var, fn, caller):
        """`POST /train`: checks the body (train_options) and that every file is a
        person's (`features/USER/...`), then runs fn(promote, gate_share, seed) as the
        job. One training at a time: another while one runs is 503 `jobs_busy`."""
        promote, share, seed = self.train_options(body, model_file, model_file_var)
        bad = next((k for k in files if len(k.split("/")) < 3 or k.split("/")[0] != "features"), None)
        if bad is not None:
            raise self.api_error(400, f"{bad[:100]!r}: training files are features/USER/... (a person is a USER)")
        if not self._training.acquire(blocking=False):
            raise self.api_error(
                503, "a training job is running; this service trains one at a time", {"Retry-After": "60"}, "jobs_busy"
            )

        def job():
            try:
                return fn(promote, share, seed)
            finally:
                self._training.release()

        try:
            return self.submit("train", job, caller)
        except BaseException:
            self._training.release()
            raise

    def status(self, task):
        """`GET /status?taskID=`: the job's record."""
        if task is None or task == "":
            raise self.api_error(400, "taskID is required")
        st = self.store.get(task)
        if st is None:
            raise self.api_error(404, "unknown or expired taskID")
        return st
