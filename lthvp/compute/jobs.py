"""Background job queue: one diskcache beside the results store, shared by the app and the workers.

A job is keyed by the resolved config hash, so two users asking for the same run share one job.
Records are JSON strings (never unpickled). Every read-modify-write runs inside ``cache.transact()``
(SQLite ``BEGIN IMMEDIATE``), so claiming is atomic across processes: one owner per job.

States: queued -> running -> done | failed | cancelled; running -> queued (its worker was stopped by
SIGTERM/Ctrl-C, or died); queued -> cancelled; queued -> failed (malformed: at ``claim``).
At least once: a running job whose worker is dead (no heartbeat for ``STALE_S``, or its pid gone on
this host) goes back in line, same place, at the next ``claim``/``reap``; the ``MAX_ATTEMPTS``-th dead
worker fails it. (``crashed`` is only read, on older records.) A stored result is never queued
("cached"). Finished jobs are re-queued by submitting them again (which resets ``lost``).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from lthvp.compute import job_log
from lthvp.compute.job_states import (ACTIVE, CANCELLED, CRASHED, DONE, FAILED, FINISHED, JOB, QUEUED,  # noqa: F401
                                      RUNNING, STATES, WORKER, JobCancelled, check_job)
from lthvp.results.config import RunConfig
from lthvp.results.disk_cache import open_cache
from lthvp.results.presets import resolve

HEARTBEAT_S = 2.0  # how often a worker heartbeats
STALE_S = 30.0  # a running job / worker without a heartbeat for this long is dead
MAX_ATTEMPTS = 3  # a job whose worker dies this many times is failed, not requeued again


def jobs_dir(store_dir: str | os.PathLike) -> Path:
    """The queue lives in a ``jobs`` directory inside the results store's directory."""
    return Path(store_dir) / "jobs"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
        with open(f"/proc/{int(pid)}/stat") as f:  # a zombie (exited child not yet reaped) is dead
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except ProcessLookupError:
        return False
    except (OSError, IndexError):  # PermissionError: exists, owned by someone else
        return True


@dataclass(frozen=True)
class Submission:
    """What ``submit`` did: ``status`` is 'cached', 'queued' (new), 'requeued' or 'existing'."""
    job_id: str
    status: str
    job: dict | None


class QueueError(ValueError):
    """A job queue that cannot be opened as it is (the message says how to recover)."""


class JobQueue:
    def __init__(self, directory: str | os.PathLike, stale_s: float = STALE_S, max_attempts: int = MAX_ATTEMPTS):
        self.directory = Path(directory)
        self.cache = open_cache(directory, "the job queue path", lambda why: QueueError(
            f"the job queue {directory} cannot be read ({why}); jobs are disposable: stop the workers, move it aside"))
        self.stale_s, self.max_attempts = stale_s, max_attempts
        self.host = socket.gethostname()

    @classmethod
    def for_store(cls, store_dir: str | os.PathLike, **kw) -> "JobQueue":
        return cls(jobs_dir(store_dir), **kw)

    def _get(self, key: str) -> dict | None:
        """The record, or None (also for a hand-written value that is not JSON: it is overwritten)."""
        try:
            return json.loads(self.cache.get(key) or "null")
        except (TypeError, ValueError):
            return None

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
        """Every job, oldest first (reads only the job records, never the results). A hand-written
        record that is not a JSON object is skipped; one without ``seq`` sorts last."""
        keys = [k for k in self.cache.iterkeys() if isinstance(k, str) and k.startswith(JOB)]
        out = [dict(job, id=k[len(JOB):]) for k in keys if isinstance(job := self._get(k), dict)]
        return sorted(out, key=lambda j: j["seq"] if isinstance(j.get("seq"), (int, float)) else float("inf"))

    def submit(self, config: RunConfig, user: str | None = None, store=None) -> Submission:
        """Queue one run unless it is stored (``cached``) or already queued/running/done."""
        job_id = (cfg := resolve(config)).hash()
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
            job.update(dict(state=CANCELLED, finished_at=time.time()) if job["state"] == QUEUED else {"cancel_requested": True})
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

    def claim(self, worker_id: str, pid: int | None = None) -> dict | None:
        """The oldest runnable job, marked running for this worker in one transaction (one owner per
        job; dead workers' jobs back in line, malformed ones failed): :func:`lthvp.compute.claims.claim_group`."""
        from lthvp.compute.claims import claim_group

        return next(iter(claim_group(self, worker_id, pid)), None)

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
        """Store per-epoch progress (and a line in the job's log); returns the job so the caller can
        check ``cancel_requested``."""
        job = self._update_own(job_id, worker_id, progress=progress, heartbeat=time.time())
        if job is not None and job.get("worker") == worker_id and job["state"] == RUNNING:
            job_log.record_progress(self, job_id, progress)
        return job

    def requeue(self, job_id: str, worker_id: str, reason: str) -> dict | None:
        """Put this worker's running job back in line, its place (``seq``) kept: the worker was stopped."""
        job_log.append(self, job_id, f"re-queued: {reason}")
        return self._update_own(job_id, worker_id, bump=True, state=QUEUED, previous_state=RUNNING, worker=None,
                                pid=None, host=None, started_at=None, heartbeat=None, progress=None, requeued=reason)

    def finish(self, job_id: str, worker_id: str, state: str, error: str | None = None) -> dict | None:
        if state not in FINISHED:
            raise ValueError(f"not a final state: {state!r}")
        job = self._update_own(job_id, worker_id, bump=True, state=state, error=error, finished_at=time.time(),
                               heartbeat=time.time())
        if job is not None and job.get("worker") == worker_id and job["state"] == state:
            job_log.append(self, job_id, f"{state} (worker {worker_id})" + (f": {error}" if error else ""))
        return job

    def is_dead(self, pid: int | None, host: str | None, heartbeat: float | None, now: float | None = None) -> bool:
        now = now or time.time()
        if heartbeat is None or now - heartbeat > self.stale_s:
            return True
        return host == self.host and not pid_alive(pid)

    def _lost(self, job: dict, now: float) -> bool:
        return job.get("state") == RUNNING and self.is_dead(job.get("pid"), job.get("host"), job.get("heartbeat"), now)

    def _sweep(self, jobs: list[dict], now: float) -> list[str]:
        """Inside a transaction: each running job of a dead worker goes back in line (``seq`` kept), or
        ends once ``max_attempts`` workers died on it (or a cancel was asked). Updates ``jobs`` in place."""
        swept = [j for j in jobs if self._lost(j, now)]
        for job in swept:
            lost = job.get("lost", 0) + 1
            who = f"worker {job.get('worker')} (pid {job.get('pid')} on {job.get('host')}) stopped heartbeating"
            if lost >= self.max_attempts or job.get("cancel_requested"):
                job.update(state=CANCELLED if job.get("cancel_requested") else FAILED, finished_at=now, lost=lost,
                           error=f"{who}; {lost} of {self.max_attempts} attempts lost to dead workers, giving up")
            else:
                job.update(state=QUEUED, previous_state=RUNNING, lost=lost, worker=None, pid=None, host=None,
                           started_at=None, heartbeat=None, progress=None, requeued=who)
            self._set(JOB + job["id"], job)
            self._bump()
        return [j["id"] for j in swept]

    def reap(self) -> list[str]:
        """Requeue (or end, see ``_sweep``) running jobs whose worker is gone; returns their ids."""
        now = time.time()
        if not any(self._lost(j, now) for j in self.jobs()):
            return []  # the common case takes no write lock (the Run page calls this on every render)
        with self.cache.transact():
            return self._sweep(self.jobs(), now)

    def register_worker(self, worker_id: str, **info) -> None:
        self._set(WORKER + worker_id, {"id": worker_id, "pid": os.getpid(), "host": self.host,
                                       "started": (now := time.time()), "heartbeat": now, "job": None, **info})

    def worker_heartbeat(self, worker_id: str, job: str | None = None) -> None:
        with self.cache.transact():
            info = self._get(WORKER + worker_id) or {"id": worker_id, "pid": os.getpid(), "host": self.host,
                                                     "started": time.time()}
            info.update(heartbeat=time.time(), job=job)
            self._set(WORKER + worker_id, info)

    def unregister_worker(self, worker_id: str) -> None:
        self.cache.delete(WORKER + worker_id)

    def workers(self, alive_only: bool = True) -> list[dict]:
        now = time.time()
        keys = [k for k in self.cache.iterkeys() if isinstance(k, str) and k.startswith(WORKER)]
        out = [w for k in keys if isinstance(w := self._get(k), dict)]
        for w in out:
            w["alive"] = not self.is_dead(w.get("pid"), w.get("host"), w.get("heartbeat"), now)
        return sorted((w for w in out if w["alive"] or not alive_only), key=lambda w: w.get("started") or 0)

    def try_mark_spawn(self, within_s: float = 60.0) -> bool:
        """True for one caller per ``within_s`` window (sessions must not start workers at once) --
        unless the worker started in it has exited (a --once worker that found an empty queue)."""
        with self.cache.transact():
            last = self.cache.get("spawned_at")
            now = time.time()
            recent = last is not None and now - float(last) < within_s
            if recent and (pid_alive(pid := self.cache.get("spawned_pid")) or pid is None and now - float(last) < 10):
                return False  # it runs, or another session is starting one right now
            self.cache.set("spawned_at", now)
            self.cache.delete("spawned_pid")
            return True

    def record_spawn(self, pid: int) -> None:
        self.cache.set("spawned_pid", int(pid))

    def counts(self) -> dict[str, int]:
        return {**dict.fromkeys(STATES, 0), **Counter(job.get("state") for job in self.jobs())}

