"""``sweep`` is "submit and drain": the requested grid is resolved and hashed once, stored runs are
skipped, the rest are submitted to the store's job queue, and this process drains exactly those
jobs, in this process (a :class:`~lthvp.compute.worker.Worker` that claims only them, a cell's seeds
as one group) or on Dask (:func:`lthvp.compute.dask_sweep.dask_sweep`). Whatever another worker or
sweep already runs is shared, not trained twice; a job whose worker dies comes back at the next
claim. Stopped early (Ctrl-C, SIGTERM), the sweep requeues what it was running and cancels its own
jobs that never started, so nothing it queued runs after it has gone.
"""

from __future__ import annotations

import getpass
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from lthvp.compute.executor import pending, resolve_all
from lthvp.compute.jobs import ACTIVE, DONE, JobQueue
from lthvp.results.config import RunConfig

Finished = Callable[[list[tuple[str, str, str | None]]], None]  # [(job id, state, error)] of one group


@dataclass
class SweepReport:
    """What a sweep did: results stored, configs skipped (already stored or repeated), failures
    as (resolved config dict, one-line error), wall seconds."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[dict, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Submitted:
    """A sweep's jobs: ``ids`` to drain (request order), their resolved configs, the ones this
    sweep queued itself (``fresh``), and how many requested configs needed no job."""

    ids: list[str]
    configs: dict[str, RunConfig]
    fresh: list[str]
    skipped: int
    user: str


def shard(configs: list[RunConfig], k: int, n: int) -> list[RunConfig]:
    """The K-th of N shards, whole cells (the seeds that train together) dealt round-robin within
    each (method, shots, arm) group, so every shard gets its share of the expensive cells (a plain
    configs[k::n] can line up with an axis: with four shot counts and two shards, one shard got
    every full-data run) and no cell's seeds are split across shards."""
    groups: dict[tuple, dict[str, list]] = {}
    for c in configs:
        together = c.method in ("vp", "map") and str(c.shots) != "full"  # as executor.cell_key
        cell = repr(c.replace(seed=0)) if together else repr(c)
        groups.setdefault((c.method, str(c.shots), c.arm), {}).setdefault(cell, []).append(c)
    return [c for cells in groups.values() for cell in list(cells.values())[k::n] for c in cell]


def submit(configs: Iterable[RunConfig], store, queue: JobQueue, user: str | None = None) -> Submitted:
    """Plan and queue: every requested config resolved and hashed once (:func:`resolve_all`),
    stored ones skipped, the rest submitted (a job already queued or running is joined)."""
    requested = list(configs)
    user = user or getpass.getuser()
    todo = pending(resolve_all(requested), store)
    ids, fresh = [], []
    for key, cfg in todo.items():
        if (queue.get(key) or {}).get("state") == DONE:
            queue.forget(key)  # done once, but its result is gone (deleted): train it again
        sub = queue.submit(cfg, user=user, store=store)
        if sub.status == "cached":  # stored meanwhile
            continue
        ids.append(key)
        if sub.status in ("queued", "requeued"):
            fresh.append(key)
    return Submitted(ids, {k: todo[k] for k in ids}, fresh, len(requested) - len(ids), user)


def cancel_unstarted(queue: JobQueue, sub: Submitted) -> list[str]:
    """Cancel the sweep's own jobs still waiting (nobody else asked for them); returns their ids."""
    cancelled = []
    for key in sub.fresh:
        job = queue.get(key) or {}
        if job.get("state") == "queued" and job.get("submitters") == [sub.user]:
            queue.cancel(key, user=sub.user)
            cancelled.append(key)
    return cancelled


def report(queue: JobQueue, store, sub: Submitted, t0: float) -> SweepReport:
    """The sweep's outcome, read from its jobs: stored, or failed/cancelled with the job's reason."""
    out = SweepReport(skipped=sub.skipped, seconds=time.time() - t0)
    for key in sub.ids:
        job = queue.get(key) or {}
        if store.has(key):
            out.done += 1
        else:
            reason = job.get("error") or f"job {job.get('state', 'gone')}"
            out.failed.append((sub.configs[key].to_dict(), reason))
    return out


def drain_local(sub: Submitted, store, queue: JobQueue, on_finished: Finished | None = None,
                poll: float = 0.5, log=None, execute=None) -> SweepReport:
    """Run the sweep's jobs in this process until each is final: claim a job or a cell's group,
    run (``execute``, default ``runner.run_batch``), store once; wait (polling) while another
    worker holds some of them."""
    from lthvp.compute.worker import StopRequested, Worker

    t0 = time.time()
    only = set(sub.ids)
    worker = Worker(queue, store, only=only, log=log or (lambda msg: None), execute=execute)
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM: requeue, then cancel the rest
        previous = signal.signal(signal.SIGTERM, lambda sig, frame: worker.request_stop(sig))
    worker.start()
    try:
        while not worker._stop.is_set():
            if ran := worker.run_next():
                if on_finished:
                    on_finished(ran)
                continue
            if not any((queue.get(k) or {}).get("state") in ACTIVE for k in sub.ids):
                break
            worker._stop.wait(poll)  # held by another worker; a dead one's job comes back at our next claim
    except StopRequested:
        pass  # the running jobs are back in the queue
    finally:
        worker.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        cancel_unstarted(queue, sub)
    return report(queue, store, sub, t0)
