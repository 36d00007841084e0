"""Drain the dashboard's job queue onto a Dask cluster: ``python -m lthvp worker --dask ADDRESS``.

The app's users submit exactly as before. This process keeps up to ``in_flight`` tasks on the
cluster, each a claimed job or the claimed seeds of one cell trained together
(:func:`lthvp.compute.claims.claim_group`, ``runner.run_batch`` on a cluster worker, no store) and,
as the store's only writer, puts each returned record once (``executor.put_once``) and finishes its
job. ``sweep --dask`` submits its grid and drains only those jobs (``only``). Per-epoch progress comes back as Dask events (topic
``lthvp-progress``) and is written to the queue, so the Run page shows it; a cancel requested on the
Run page sets the job's Dask ``Event``, which the task checks at every progress step (the other
members of its group train on; a task still waiting for a worker, all of whose jobs are cancelled,
is simply cancelled). SIGTERM puts every job in flight back in the queue.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

from lthvp.compute.claims import claim_group
from lthvp.compute.executor import MAX_GROUP, NOT_STORED, GroupProgress, one_line, put_once
from lthvp.compute.jobs import ACTIVE, CANCELLED, DONE, FAILED, QUEUED, JobQueue
from lthvp.results.config import RunConfig

PROGRESS_TOPIC = "lthvp-progress"


def cancel_event(job_id: str, attempt: int) -> str:
    """Per attempt: a set Event stays set on the scheduler, so a re-queued or resubmitted job must
    not find the flag of its previous attempt."""
    return f"lthvp-cancel-{job_id}-{attempt}"


def run_batch_task(config_dicts: list[dict], job_ids: list[str], threads: int | None = 1,
                   attempts: list[int] | None = None, task=None) -> list[dict]:
    """What a cluster worker executes for a claimed job or group: the plain-JSON records back.
    ``task(config_dict, threads)``: run each config with it instead (tests' stand-ins)."""
    import torch
    from distributed import Event, get_worker

    from lthvp.compute.runner import run_batch

    if threads:
        torch.set_num_threads(int(threads))
    if task is not None:
        return [task(c, threads) for c in config_dicts]
    worker = get_worker()
    cancels = [Event(cancel_event(j, a)) for j, a in zip(job_ids, attempts or [1] * len(job_ids))]

    def keep(i: int, p: dict) -> bool:
        worker.log_event(PROGRESS_TOPIC, {"job": job_ids[i], "progress": p})
        return not cancels[i].is_set()

    configs = [RunConfig.from_dict(c) for c in config_dicts]
    return run_batch(configs, GroupProgress(job_ids, keep).callbacks())


def batch_failure(future, result, n: int) -> str | None:
    """None when a finished task returned ``n`` records; else why not, on one line."""
    if future.status == "error":  # result is (type, exception, traceback)
        return one_line(result[1] if isinstance(result, tuple) and len(result) == 3 else result)
    if future.status != "finished" or isinstance(result, BaseException):
        return one_line(result) if isinstance(result, BaseException) else f"task {future.status}"
    if not isinstance(result, list) or len(result) != n:
        return f"the task returned {type(result).__name__}, not {n} record(s) (different code on the worker?)"
    return None


class DaskQueueDrain:
    """Moves queued jobs (alone or a cell's group per task) onto a Dask client's cluster and their
    results into the store. ``only``: drain just these job ids; ``task``: see :func:`run_batch_task`;
    ``on_finish(job, state, error)``: called as each job ends."""

    def __init__(self, queue: JobQueue, store, in_flight: int, gpu: bool = False, worker_id: str | None = None,
                 log=None, only=None, task=None, max_group: int = MAX_GROUP, on_finish=None):
        if not (isinstance(in_flight, int) and in_flight >= 1):
            raise ValueError(f"--in-flight must be an integer >= 1, got {in_flight!r}")
        self.queue, self.store, self.in_flight = queue, store, in_flight
        self.resources = {"GPU": 1} if gpu else None  # one task per GPU worker at a time
        self.id = worker_id or f"dask-{socket.gethostname()}-{os.getpid()}"
        self.log = log or (lambda msg: print(f"[{self.id}] {msg}", file=sys.stderr, flush=True))
        self.only, self.task, self.on_finish = only, task, on_finish
        self.max_group = 1 if task is not None else max_group
        self.jobs: dict = {}  # future -> the jobs it runs
        self._progress: dict[str, dict] = {}  # job id -> latest progress (written by the event thread)
        self._lock = threading.Lock()
        self._cancelled: set[str] = set()
        self.stop_event = threading.Event()

    def _on_progress(self, event) -> None:
        msg = event[1] if isinstance(event, (tuple, list)) and len(event) == 2 else event
        if isinstance(msg, dict) and isinstance(msg.get("progress"), dict):
            with self._lock:
                self._progress[str(msg.get("job"))] = msg["progress"]

    def _fill(self, client, threads: int) -> None:
        while len(self.jobs) < self.in_flight and not self.stop_event.is_set():
            jobs = claim_group(self.queue, self.id, max_group=self.max_group, only=self.only)
            if not jobs:
                return
            ids, attempts = [j["id"] for j in jobs], [j.get("attempts", 1) for j in jobs]
            future = client.submit(run_batch_task, [j["config"] for j in jobs], ids, threads, attempts, self.task,
                                   pure=False, retries=0, resources=self.resources,
                                   key=f"lthvp-job-{ids[0]}-{attempts[0]}-x{len(ids)}")
            self.jobs[future] = jobs
            self.log(f"submitted {', '.join(ids)} (for {jobs[0]['submitted_by']!r})")

    def _relay(self, client) -> None:
        """Progress and heartbeats into the queue; cancel requests out to the tasks."""
        from distributed import Event

        with self._lock:
            progress, self._progress = self._progress, {}
        for future, jobs in list(self.jobs.items()):
            for job in jobs:
                jid = job["id"]
                state = (self.queue.progress(jid, self.id, progress[jid]) if jid in progress
                         else self.queue.heartbeat(jid, self.id))
                if state is not None and state.get("cancel_requested") and jid not in self._cancelled:
                    self._cancelled.add(jid)
                    Event(cancel_event(jid, job.get("attempts", 1)), client=client).set()
            if future.status == "pending" and all(j["id"] in self._cancelled for j in jobs):  # not started yet
                future.cancel()
        running = [j["id"] for jobs in self.jobs.values() for j in jobs]
        self.queue.worker_heartbeat(self.id, ",".join(running) or None)

    def _finish(self, job: dict, state: str, error: str | None) -> None:
        self.queue.finish(job["id"], self.id, state, error)
        self.log(f"{job['id']} {state}" + (f" ({error})" if error else ""))
        if self.on_finish:
            self.on_finish(job, state, error)

    def _collect(self) -> int:
        finished = 0
        for future in [f for f in self.jobs if f.done()]:
            jobs = self.jobs.pop(future)
            if future.status == "cancelled" and not all(j["id"] in self._cancelled for j in jobs):
                for job in jobs:  # Dask dropped it (lost scheduler): back in line
                    self.queue.requeue(job["id"], self.id, f"{self.id}: the cluster dropped the task")
                self.log(f"{', '.join(j['id'] for j in jobs)} re-queued (the cluster dropped the task)")
                future.release()
                continue
            gave_up = future.status == "cancelled" or (future.status == "error"
                                                       and type(future.exception()).__name__ == "JobCancelled")
            result = None if gave_up else future.result() if future.status == "finished" else \
                (None, future.exception(), None)
            error = None if gave_up else batch_failure(future, result, len(jobs))
            for i, job in enumerate(jobs):
                if gave_up or job["id"] in self._cancelled:
                    self._finish(job, CANCELLED, "cancelled while running")
                elif error is not None:
                    self._finish(job, FAILED, error)
                else:
                    status, why = put_once(self.store, job["id"], result[i])
                    self._finish(job, FAILED if status == NOT_STORED else DONE, why)
                finished += 1
            future.release()
        return finished

    def _waiting(self) -> bool:
        """Jobs left to drain: queued ones (with ``only``: also those another worker still runs)."""
        states = (QUEUED,) if self.only is None else ACTIVE
        return any(j.get("state") in states and (self.only is None or j["id"] in self.only) for j in self.queue.jobs())

    def loop(self, client, threads: int = 1, once: bool = False, poll: float = 1.0) -> int:
        """Drain until stopped (``once``: until the queue is empty and nothing is in flight)."""
        if not (isinstance(poll, (int, float)) and 0 < poll < float("inf")):
            raise ValueError(f"poll must be a number of seconds > 0, got {poll!r}")
        client.subscribe_topic(PROGRESS_TOPIC, self._on_progress)
        self.queue.register_worker(self.id, dask=str(client.scheduler.address), in_flight=self.in_flight)
        done = 0
        try:
            while not self.stop_event.is_set():
                self.queue.reap()
                self._fill(client, threads)
                self._relay(client)
                done += self._collect()
                if once and not self.jobs and not self._waiting():
                    break
                self.stop_event.wait(poll)
        finally:
            self._requeue_in_flight(client)
            client.unsubscribe_topic(PROGRESS_TOPIC)
            self.queue.unregister_worker(self.id)
        return done

    def _requeue_in_flight(self, client) -> None:
        from distributed import Event

        self._collect()  # what already finished is stored, not trained again
        for future, jobs in self.jobs.items():
            for job in jobs:
                Event(cancel_event(job["id"], job.get("attempts", 1)), client=client).set()  # stops at its next step
                self.queue.requeue(job["id"], self.id, f"{self.id} stopped")
            future.cancel()
            self.log(f"{', '.join(j['id'] for j in jobs)} re-queued (drain stopped)")
        self.jobs.clear()


def main(args, store, queue: JobQueue) -> int:
    """``python -m lthvp worker --dask ADDRESS [--in-flight N] [--gpu] [--once]``."""
    import signal

    from lthvp.compute.dask_cluster import dask_client

    with dask_client(args.dask, gpu=args.gpu) as (client, threads):
        in_flight = args.in_flight or sum(client.nthreads().values())
        drain = DaskQueueDrain(queue, store, in_flight, gpu=args.gpu)
        previous = signal.signal(signal.SIGTERM, lambda sig, frame: drain.stop_event.set())
        drain.log(f"draining {queue.directory} onto {args.dask}: {in_flight} task(s) in flight (a job, or a cell's seeds), "
                  f"{threads} torch thread(s) per task")
        t0 = time.time()
        try:
            n = drain.loop(client, threads, once=args.once, poll=args.poll)
        except KeyboardInterrupt:
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
        drain.log(f"exiting after {n} job(s) in {time.time() - t0:.0f} s")
    return 0
