"""Claiming queued jobs, alone or as a group that trains together on one frozen model.

One transaction (``cache.transact()``, SQLite ``BEGIN IMMEDIATE``) puts dead workers' jobs back in
line, fails the malformed queued jobs met on the way, and marks the oldest runnable job running
for the claiming worker together with the later queued jobs of its cell (equal
:func:`lthvp.compute.executor.cell_key`: the seeds of one (family, level, arm, method, shots)),
up to ``max_group``. Each claimed job is owned, heartbeated, requeued and finished on its own
exactly as a job claimed alone (``JobQueue`` in :mod:`lthvp.compute.jobs`), so at-least-once and
one owner per job hold for every member of a group.
"""

from __future__ import annotations

import os
import time
from typing import Collection

from lthvp.compute.job_states import FAILED, JOB, QUEUED, RUNNING, check_job


def claim_group(queue, worker_id: str, pid: int | None = None, max_group: int = 1,
                only: Collection[str] | None = None) -> list[dict]:
    """The jobs claimed from ``queue`` (a ``JobQueue``), oldest first (empty when none is runnable). ``max_group`` > 1 also takes
    queued jobs of the first job's cell; ``only``: claim only jobs with these ids (a sweep drains
    what it submitted, not other users' jobs)."""
    from lthvp.compute.executor import cell_key

    if not (isinstance(max_group, int) and max_group >= 1):
        raise ValueError(f"max_group must be an integer >= 1, got {max_group!r}")
    pid = pid or os.getpid()
    taken: list[dict] = []
    with queue.cache.transact():
        now = time.time()
        jobs = queue.jobs()
        queue._sweep(jobs, now)
        cell = None
        for job in jobs:
            if job.get("state") != QUEUED or (only is not None and job["id"] not in only):
                continue
            cfg, why = check_job(job)
            if cfg is not None and taken and (cell is None or cell_key(cfg) != cell):
                continue  # runnable, but not with this group: it waits for the next claim
            if cfg is None:
                job.update(state=FAILED, finished_at=now, worker=worker_id, error=f"malformed job: {why}")
            else:
                cell = cell_key(cfg) if not taken else cell
                job.update(config=cfg.to_dict(), state=RUNNING, worker=worker_id, pid=pid, host=queue.host,
                           started_at=now, heartbeat=now, attempts=job.get("attempts", 0) + 1, error=None)
                taken.append(job)
            queue._set(JOB + job["id"], job)
            queue._bump()
            if taken and (cell is None or len(taken) >= max_group):
                break
    return taken
