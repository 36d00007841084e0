"""Background job queue: one diskcache beside the results store, shared by the app and the workers.

A job is keyed by the resolved config hash, so two users asking for the same run share one job.
Records are JSON strings (nothing is ever unpickled). Every read-modify-write happens inside
``cache.transact()`` (SQLite ``BEGIN IMMEDIATE``), so claiming is atomic across processes: two
workers never run one job.

States::
    queued -> running -> done | failed | cancelled
                      \\-> crashed   (heartbeat stale or the worker's pid is gone)
                      \\-> queued    (its worker was stopped by SIGTERM/Ctrl-C: back in line, same place)
    queued -> cancelled

A job whose result is already in the results store is not queued at all ("cached").
``failed``/``cancelled``/``crashed`` jobs are re-queued by submitting them again.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lthvp.results.config import RunConfig
from lthvp.results.disk_cache import open_cache
from lthvp.results.presets import resolve

QUEUED, RUNNING, DONE, FAILED, CANCELLED, CRASHED = "queued", "running", "done", "failed", "cancelled", "crashed"
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, CANCELLED, CRASHED)
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, CRASHED)
HEARTBEAT_S = 2.0  # how often a worker heartbeats
STALE_S = 30.0  # a running job / worker without a heartbeat for this long is dead
JOB, WORKER = "job:", "worker:"  # key prefixes


def jobs_dir(store_dir: str | os.PathLike) -> Path:
    """The queue lives in a ``jobs`` directory inside the results store's directory."""
    return Path(store_dir) / "jobs"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie (exited child not yet reaped) is dead for our purposes
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class Submission:
    """What ``submit`` did: ``status`` is 'cached', 'queued' (new), 'requeued' or 'existing'."""

    job_id: str
    status: str
    job: dict | None


class QueueError(ValueError):
    """A job queue that cannot be opened as it is (the message says how to recover)."""


class JobCancelled(Exception):
    """Raised inside a run's progress callback when its job was cancelled."""


class JobQueue:
    def __init__(self, directory: str | os.PathLike, stale_s: float = STALE_S):
        self.directory = Path(directory)
        self.cache = open_cache(directory, "the job queue path", lambda why: QueueError(
            f"the job queue {directory} cannot be read ({why}); jobs are disposable: stop the workers, move it aside"))
        self.stale_s = stale_s
        self.host = socket.gethostname()

    @classmethod
    def for_store(cls, store_dir: str | os.PathLike, **kw) -> "JobQueue":
        return cls(jobs_dir(store_dir), **kw)

    # low level ---------------------------------------------------------------------------
    def _get(self, key: str) -> dict | None:
        text = self.cache.get(key)
        return json.loads(text) if text is not None else None

    def _set(self, key: str, value: dict) -> None:
        self.cache.set(key, json.dumps(value, allow_nan=False))

    def _bump(self) -> None:
        self.cache.incr("version", default=0)

    @property
    def version(self) -> int:
        """Increments on every job state change (not on heartbeats): cheap change detection."""
        return int(self.cache.get("version", 0))

    def get(self, job_id: str) -> dict | None:
        return self._get(JOB + job_id)

    def jobs(self) -> list[dict]:
        """Every job, oldest first (reads only the job records, never the results)."""
        out = []
        for key in self.cache.iterkeys():
            if isinstance(key, str) and key.startswith(JOB):
                job = self._get(key)
                if job is not None:
                    out.append(job)
        return sorted(out, key=lambda j: j["seq"])

    # submit / cancel ---------------------------------------------------------------------
    def submit(self, config: RunConfig, user: str | None = None, store=None) -> Submission:
        """Queue one run unless it is stored (``cached``) or already queued/running/done."""
        cfg = resolve(config)
        job_id = cfg.hash()
        if store is not None and store.has(job_id):
            return Submission(job_id, "cached", self.get(job_id))
        user = user or getpass.getuser()
        now = time.time()
        with self.cache.transact():
            job = self.get(job_id)
            if job is not None and job["state"] in (QUEUED, RUNNING, DONE):
                if user not in job["submitters"]:
                    job["submitters"].append(user)
                    self._set(JOB + job_id, job)
                return Submission(job_id, "existing", job)
            status = "requeued" if job is not None else "queued"
            seq = self.cache.incr("seq", default=0)
            job = {"id": job_id, "config": cfg.to_dict(), "state": QUEUED, "seq": seq,
                   "submitted_by": user, "submitters": [user], "submitted_at": now,
                   "attempts": (job or {}).get("attempts", 0), "previous_state": (job or {}).get("state"),
                   "started_at": None, "finished_at": None, "heartbeat": None, "worker": None, "pid": None,
                   "host": None, "progress": None, "error": None, "cancel_requested": False}
            self._set(JOB + job_id, job)
            self._bump()
        return Submission(job_id, status, job)

    def submit_many(self, configs: Iterable[RunConfig], user: str | None = None, store=None) -> list[Submission]:
        return [self.submit(c, user=user, store=store) for c in configs]

    def cancel(self, job_id: str, user: str | None = None) -> dict | None:
        """A queued job is cancelled at once; a running one at its next epoch."""
        with self.cache.transact():
            job = self.get(job_id)
            if job is None or job["state"] not in ACTIVE:
                return job
            job["cancelled_by"] = user or getpass.getuser()
            if job["state"] == QUEUED:
                job["state"], job["finished_at"] = CANCELLED, time.time()
            else:
                job["cancel_requested"] = True
            self._set(JOB + job_id, job)
            self._bump()
        return job

    def forget(self, job_id: str) -> None:
        """Remove a finished job from the list (its result, if any, stays in the store)."""
        with self.cache.transact():
            job = self.get(job_id)
            if job is not None and job["state"] in FINISHED:
                self.cache.delete(JOB + job_id)
                self._bump()

    # worker side -------------------------------------------------------------------------
    def claim(self, worker_id: str, pid: int | None = None) -> dict | None:
        """Atomically take the oldest queued job and mark it running for this worker."""
        pid = pid or os.getpid()
        with self.cache.transact():
            queued = [j for j in self.jobs() if j["state"] == QUEUED]
            if not queued:
                return None
            job = queued[0]
            now = time.time()
            job.update(state=RUNNING, worker=worker_id, pid=pid, host=self.host, started_at=now, heartbeat=now,
                       attempts=job.get("attempts", 0) + 1, progress=None, error=None)
            self._set(JOB + job["id"], job)
            self._bump()
        return job

    def _update_own(self, job_id: str, worker_id: str, bump: bool = False, **fields) -> dict | None:
        """Update a job only while this worker still owns it (``bump``: a state change); returns the job."""
        with self.cache.transact():
            job = self.get(job_id)
            if job is None or job.get("worker") != worker_id or job["state"] != RUNNING:
                return job
            job.update(fields)
            self._set(JOB + job_id, job)
            if bump:
                self._bump()
        return job

    def heartbeat(self, job_id: str, worker_id: str) -> dict | None:
        return self._update_own(job_id, worker_id, heartbeat=time.time())

    def progress(self, job_id: str, worker_id: str, progress: dict) -> dict | None:
        """Store per-epoch progress; returns the job so the caller can check ``cancel_requested``."""
        return self._update_own(job_id, worker_id, progress=progress, heartbeat=time.time())

    def requeue(self, job_id: str, worker_id: str, reason: str) -> dict | None:
        """Put this worker's running job back in line, its place (``seq``) kept: the worker was stopped."""
        return self._update_own(job_id, worker_id, bump=True, state=QUEUED, previous_state=RUNNING, worker=None,
                                pid=None, host=None, started_at=None, heartbeat=None, progress=None, requeued=reason)

    def finish(self, job_id: str, worker_id: str, state: str, error: str | None = None) -> dict | None:
        if state not in FINISHED:
            raise ValueError(f"not a final state: {state!r}")
        return self._update_own(job_id, worker_id, bump=True, state=state, error=error, finished_at=time.time(),
                                heartbeat=time.time())

    # liveness ----------------------------------------------------------------------------
    def is_dead(self, pid: int | None, host: str | None, heartbeat: float | None, now: float | None = None) -> bool:
        now = now or time.time()
        if heartbeat is None or now - heartbeat > self.stale_s:
            return True
        return host == self.host and not pid_alive(pid)

    def reap(self) -> list[str]:
        """Mark running jobs whose worker is gone as crashed; returns their ids."""
        now = time.time()
        suspects = [j for j in self.jobs() if j["state"] == RUNNING and self.is_dead(j["pid"], j["host"], j["heartbeat"], now)]
        crashed = []
        if not suspects:
            return crashed
        with self.cache.transact():
            for old in suspects:
                job = self.get(old["id"])
                if job and job["state"] == RUNNING and self.is_dead(job["pid"], job["host"], job["heartbeat"], now):
                    job.update(state=CRASHED, finished_at=now,
                               error=job.get("error") or f"worker {job['worker']} (pid {job['pid']} on {job['host']}) "
                                                         f"stopped heartbeating")
                    self._set(JOB + job["id"], job)
                    crashed.append(job["id"])
            if crashed:
                self._bump()
        return crashed

    def register_worker(self, worker_id: str, **info) -> None:
        now = time.time()
        self._set(WORKER + worker_id, {"id": worker_id, "pid": os.getpid(), "host": self.host, "started": now,
                                       "heartbeat": now, "job": None, **info})

    def worker_heartbeat(self, worker_id: str, job: str | None = None) -> None:
        with self.cache.transact():
            info = self._get(WORKER + worker_id) or {"id": worker_id, "pid": os.getpid(), "host": self.host,
                                                     "started": time.time()}
            info.update(heartbeat=time.time(), job=job)
            self._set(WORKER + worker_id, info)

    def unregister_worker(self, worker_id: str) -> None:
        self.cache.delete(WORKER + worker_id)

    def workers(self, alive_only: bool = True) -> list[dict]:
        out = []
        now = time.time()
        for key in self.cache.iterkeys():
            if isinstance(key, str) and key.startswith(WORKER):
                info = self._get(key)
                if info is None:
                    continue
                info["alive"] = not self.is_dead(info.get("pid"), info.get("host"), info.get("heartbeat"), now)
                if info["alive"] or not alive_only:
                    out.append(info)
        return sorted(out, key=lambda w: w["started"])

    def try_mark_spawn(self, within_s: float = 60.0) -> bool:
        """True for exactly one caller per ``within_s`` window (several sessions must not start a
        worker at the same moment) -- unless the worker started in that window has already exited,
        which allows the next start at once (a --once worker that found an empty queue)."""
        with self.cache.transact():
            last = self.cache.get("spawned_at")
            now = time.time()
            recent = last is not None and now - float(last) < within_s
            if recent and pid_alive(self.cache.get("spawned_pid")):
                return False
            if recent and self.cache.get("spawned_pid") is None and now - float(last) < 10:
                return False  # another session is starting one right now
            self.cache.set("spawned_at", now)
            self.cache.delete("spawned_pid")
            return True

    def record_spawn(self, pid: int) -> None:
        self.cache.set("spawned_pid", int(pid))

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for job in self.jobs():
            out[job["state"]] = out.get(job["state"], 0) + 1
        return out

