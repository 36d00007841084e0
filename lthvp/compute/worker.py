"""Background worker: ``python -m lthvp worker --store DIR [--once] [--poll S]``.

Pops jobs from the store's queue (atomic claim), heartbeats from a thread, writes per-epoch
progress into the queue, checks the cancel flag every epoch, and writes the result with
``ResultStore.put`` (one transaction). Run one per GPU with ``CUDA_VISIBLE_DEVICES=i``.
SIGTERM (and Ctrl-C) put the running job back in the queue and end the worker cleanly. The job of a
worker killed outright (kill -9) goes back in line at the next claim by any worker once its pid is
gone or its heartbeat is ``STALE_S`` old (failed after ``MAX_ATTEMPTS`` such deaths); a malformed job
is failed at claim, so the worker goes on to the next one.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Callable

from lthvp.compute.jobs import CANCELLED, DONE, FAILED, HEARTBEAT_S, JobCancelled, JobQueue
from lthvp.results.config import RunConfig

Runner = Callable[..., object]  # run(config, store, progress=callable) like lthvp.compute.runner.run


class StopRequested(BaseException):
    """Raised in the main thread by the SIGTERM handler while a job runs (BaseException, like
    KeyboardInterrupt, so no ``except Exception`` inside a run swallows it)."""


def default_runner(config: RunConfig, store, progress=None):
    from lthvp.compute.runner import run

    return run(config, store, progress=progress)


def configure_threads() -> int:
    """Torch threads: LTHVP_WORKER_THREADS, else OMP_NUM_THREADS, else all but one core."""
    n = os.environ.get("LTHVP_WORKER_THREADS") or os.environ.get("OMP_NUM_THREADS")
    n = int(n) if n else max(1, (os.cpu_count() or 2) - 1)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover
        pass
    return n


class Worker:
    def __init__(self, queue: JobQueue, store, runner: Runner | None = None, worker_id: str | None = None,
                 heartbeat_s: float = HEARTBEAT_S, log=None):
        self.queue, self.store = queue, store
        self.runner = runner or default_runner
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.heartbeat_s = heartbeat_s
        self.current: str | None = None
        self._in_runner = False  # a stop signal interrupts the run only while this is set
        self._stop_signal: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.log = log or (lambda msg: print(f"[worker {self.id}] {msg}", file=sys.stderr, flush=True))

    # heartbeat thread ------------------------------------------------------------------------
    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.queue.worker_heartbeat(self.id, self.current)
                if self.current:
                    self.queue.heartbeat(self.current, self.id)
            except Exception as err:  # a busy database must not kill the worker
                self.log(f"heartbeat failed: {err}")

    def start(self) -> None:
        self.queue.register_worker(self.id, gpu=os.environ.get("CUDA_VISIBLE_DEVICES"))
        self._beat = threading.Thread(target=self._beat_loop, name="lthvp-heartbeat", daemon=True)
        self._beat.start()

    def stop(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        self.queue.unregister_worker(self.id)

    def request_stop(self, signum: int | None = None) -> None:
        """Stop after the current step; called from a signal handler, it interrupts a running job
        (which :meth:`run_job` then puts back in the queue). Nothing is printed here: a handler
        that writes to stderr while the main thread does would fail (reentrant call)."""
        self._stop_signal = signum
        self._stop.set()
        if self._in_runner:
            raise StopRequested(signum)

    # jobs ------------------------------------------------------------------------------------
    def run_job(self, job: dict) -> str:
        """Run one claimed job to a final state; returns it."""
        job_id = job["id"]
        self.current = job_id
        self.queue.worker_heartbeat(self.id, job_id)

        def progress(p: dict) -> None:
            state = self.queue.progress(job_id, self.id, dict(p))
            if state is None or state.get("cancel_requested") or state.get("worker") != self.id:
                raise JobCancelled(job_id)

        t0 = time.time()
        try:
            self._in_runner = True
            if self._stop.is_set():  # the signal came between the claim and here
                raise StopRequested()
            cfg = RunConfig.from_dict(job["config"])  # inside the try: a bad config fails the job, not the worker
            self.runner(cfg, self.store, progress=progress)
            self._in_runner = False
            final, error = DONE, None
        except (StopRequested, KeyboardInterrupt):
            self._in_runner, self.current = False, None
            self.queue.requeue(job_id, self.id, f"worker {self.id} stopped after {time.time() - t0:.1f} s")
            self.log(f"{job_id} re-queued (worker stopped)")
            raise
        except JobCancelled:
            final, error = CANCELLED, "cancelled while running"
        except Exception as err:  # recorded on the job; the worker carries on
            final, error = FAILED, f"{type(err).__name__}: {err}"
            self.log(traceback.format_exc())
        finally:
            self._in_runner, self.current = False, None
        self.queue.finish(job_id, self.id, final, error)
        self.log(f"{job_id} {final} in {time.time() - t0:.1f} s" + (f" ({error})" if error else ""))
        return final

    def run_once(self) -> str | None:
        """Claim and run one job (the claim first requeues dead workers' jobs); None when the queue is empty."""
        job = self.queue.claim(self.id)
        if job is None:
            return None
        c = job["config"]  # complete: the claim checked and normalised it
        self.log(f"running {job['id']}: {c['method']} {c['dataset']} L{c['level']} {c['shots']}-shot "
                 f"seed {c['seed']} (for {job.get('submitted_by')!r})")
        return self.run_job(job)

    def loop(self, once: bool = False, poll: float = 1.0, idle_exit_s: float | None = None) -> int:
        """Process jobs until stopped; ``once``: exit when the queue is empty."""
        if not (isinstance(poll, (int, float)) and 0 < poll < float("inf")):
            raise ValueError(f"poll must be a number of seconds > 0, got {poll!r}")
        self.start()
        idle_since = time.time()
        done = 0
        try:
            while not self._stop.is_set():
                if self.run_once() is not None:
                    done += 1
                    idle_since = time.time()
                    continue
                if once or (idle_exit_s is not None and time.time() - idle_since > idle_exit_s):
                    break
                self._stop.wait(poll)
        except StopRequested:
            pass  # the running job is back in the queue
        finally:
            self.stop()
        if self._stop_signal is not None:
            self.log(f"stopped by signal {self._stop_signal}")
        return done


def install_stop_handler(worker: Worker, signum: int = signal.SIGTERM):
    """SIGTERM -> :meth:`Worker.request_stop` (the running job goes back to the queue, the loop
    ends, the worker exits 0). Returns the previous handler."""
    return signal.signal(signum, lambda sig, frame: worker.request_stop(sig))


def main(args) -> int:
    """Entry point of ``python -m lthvp worker``."""
    from lthvp.paths import default_store_dir
    from lthvp.results.seeding import open_seeded_store

    if getattr(args, "dask", None):
        from lthvp.compute.dask_sweep import parse_address

        parse_address(args.dask)  # a bad address fails before the store is opened
    elif getattr(args, "gpu", False) or getattr(args, "in_flight", None):
        raise ValueError("--gpu and --in-flight need --dask (a local worker runs one job at a time)")
    store_dir = Path(args.store or default_store_dir())
    threads = configure_threads()
    store, seeded = open_seeded_store(store_dir)
    queue = JobQueue.for_store(store_dir)
    if getattr(args, "dask", None):
        from lthvp.compute import dask_queue

        return dask_queue.main(args, store, queue)
    worker = Worker(queue, store)
    for message in seeded:
        worker.log(message)
    idle = os.environ.get("LTHVP_WORKER_IDLE_EXIT")
    worker.log(f"store {store_dir}, {threads} torch threads, device "
               f"{os.environ.get('LTHVP_DEVICE') or 'auto'}, {'--once' if args.once else f'polling every {args.poll} s'}")

    install_stop_handler(worker)
    try:
        n = worker.loop(once=args.once, poll=args.poll, idle_exit_s=float(idle) if idle else None)
    except KeyboardInterrupt:
        return 130
    worker.log(f"exiting after {n} job(s)")
    return 0
