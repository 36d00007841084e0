"""Drain the dashboard's job queue onto a Dask cluster: ``python -m lthvp worker --dask ADDRESS``.

The app's users submit exactly as before. This process claims up to ``in_flight`` queued jobs, runs
each as a Dask task (``run(cfg, store=None)`` on a cluster worker) and, as the store's only writer,
puts the returned record and finishes the job. Per-epoch progress comes back as Dask events (topic
``lthvp-progress``) and is written to the queue, so the Run page shows it; a cancel requested on the
Run page sets a Dask ``Event`` that the task checks at every progress step (a task still waiting for
a worker is simply cancelled). SIGTERM puts every job in flight back in the queue.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

from lthvp.compute.dask_sweep import one_line, task_failure
from lthvp.compute.jobs import CANCELLED, DONE, FAILED, JobCancelled, JobQueue
from lthvp.results.config import RunConfig
from lthvp.results.run_record import RunRecord

PROGRESS_TOPIC = "lthvp-progress"


def cancel_event(job_id: str, attempt: int) -> str:
    """Per attempt: a set Event stays set on the scheduler, so a re-queued or resubmitted job must
    not find the flag of its previous attempt."""
    return f"lthvp-cancel-{job_id}-{attempt}"


def run_job_task(config_dict: dict, job_id: str, threads: int | None = 1, attempt: int = 1) -> dict:
    """What a cluster worker executes for one queued job: the plain-JSON record back."""
    import torch
    from distributed import Event, get_worker

    from lthvp.compute.runner import run

    if threads:
        torch.set_num_threads(int(threads))
    worker, cancel = get_worker(), Event(cancel_event(job_id, attempt))

    def progress(p: dict) -> None:
        worker.log_event(PROGRESS_TOPIC, {"job": job_id, "progress": dict(p)})
        if cancel.is_set():
            raise JobCancelled(job_id)

    return run(RunConfig.from_dict(config_dict), store=None, progress=progress).record


class DaskQueueDrain:
    """Moves queued jobs onto a Dask client's cluster and their results into the store."""

    def __init__(self, queue: JobQueue, store, in_flight: int, gpu: bool = False, worker_id: str | None = None,
                 log=None):
        if not (isinstance(in_flight, int) and in_flight >= 1):
            raise ValueError(f"--in-flight must be an integer >= 1, got {in_flight!r}")
        self.queue, self.store, self.in_flight = queue, store, in_flight
        self.resources = {"GPU": 1} if gpu else None  # one task per GPU worker at a time
        self.id = worker_id or f"dask-{socket.gethostname()}-{os.getpid()}"
        self.log = log or (lambda msg: print(f"[{self.id}] {msg}", file=sys.stderr, flush=True))
        self.jobs: dict = {}  # future -> job
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
            job = self.queue.claim(self.id)
            if job is None:
                return
            attempt = job.get("attempts", 1)
            future = client.submit(run_job_task, job["config"], job["id"], threads, attempt, pure=False, retries=0,
                                   resources=self.resources, key=f"lthvp-job-{job['id']}-{attempt}")
            self.jobs[future] = job
            self.log(f"submitted {job['id']} (for {job['submitted_by']!r})")

    def _relay(self, client) -> None:
        """Progress and heartbeats into the queue; cancel requests out to the tasks."""
        from distributed import Event

        with self._lock:
            progress, self._progress = self._progress, {}
        for future, job in list(self.jobs.items()):
            jid = job["id"]
            state = (self.queue.progress(jid, self.id, progress[jid]) if jid in progress
                     else self.queue.heartbeat(jid, self.id))
            if state is not None and state.get("cancel_requested") and jid not in self._cancelled:
                self._cancelled.add(jid)
                Event(cancel_event(jid, job.get("attempts", 1)), client=client).set()
                if future.status == "pending":  # not started on a worker yet
                    future.cancel()
        self.queue.worker_heartbeat(self.id, ",".join(j["id"] for j in self.jobs.values()) or None)

    def _collect(self) -> int:
        finished = 0
        for future in [f for f in self.jobs if f.done()]:
            job = self.jobs.pop(future)
            jid = job["id"]
            state, error = DONE, None
            if future.status == "cancelled" and jid not in self._cancelled:  # Dask dropped it (lost scheduler)
                self.queue.requeue(jid, self.id, f"{self.id}: the cluster dropped the task")
                self.log(f"{jid} re-queued (the cluster dropped the task)")
                future.release()
                continue
            if future.status == "cancelled" or (future.status == "error"
                                                 and type(future.exception()).__name__ == "JobCancelled"):
                state, error = CANCELLED, "cancelled while running"
            else:
                result = future.result() if future.status == "finished" else (None, future.exception(), None)
                error = task_failure(future, result, jid)
                if error is None and not self.store.has(jid):
                    try:
                        self.store.put(RunRecord.from_json(result))  # the worker's JSON, validated
                    except (TypeError, ValueError) as err:
                        error = f"not stored: {one_line(err)}"
                state = FAILED if error else DONE
            self.queue.finish(jid, self.id, state, error)
            self.log(f"{jid} {state}" + (f" ({error})" if error else ""))
            future.release()
            finished += 1
        return finished

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
                if once and not self.jobs and not any(j["state"] == "queued" for j in self.queue.jobs()):
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
        for future, job in self.jobs.items():
            Event(cancel_event(job["id"], job.get("attempts", 1)), client=client).set()  # stops at its next step
            future.cancel()
            self.queue.requeue(job["id"], self.id, f"{self.id} stopped")
            self.log(f"{job['id']} re-queued (drain stopped)")
        self.jobs.clear()


def main(args, store, queue: JobQueue) -> int:
    """``python -m lthvp worker --dask ADDRESS [--in-flight N] [--gpu] [--once]``."""
    import signal

    from lthvp.compute.dask_sweep import dask_client

    with dask_client(args.dask, gpu=args.gpu) as (client, threads):
        in_flight = args.in_flight or sum(client.nthreads().values())
        drain = DaskQueueDrain(queue, store, in_flight, gpu=args.gpu)
        previous = signal.signal(signal.SIGTERM, lambda sig, frame: drain.stop_event.set())
        drain.log(f"draining {queue.directory} onto {args.dask}: {in_flight} job(s) in flight, "
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
