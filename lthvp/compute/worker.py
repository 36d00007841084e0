"""Background worker: ``python -m lthvp worker --store DIR [--once] [--poll S]``.

Claims jobs from the store's queue (atomic claim: a job alone, or the queued seeds of its cell as one
group trained together on one frozen model, :mod:`lthvp.compute.claims`), heartbeats every claimed
job from a thread, writes per-epoch progress into the queue, checks each job's cancel flag every
epoch (a cancelled member of a group is not stored; the others go on), and stores each result once
with :func:`lthvp.compute.executor.put_once`. Run one per GPU with ``CUDA_VISIBLE_DEVICES=i``.
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

from lthvp.compute.claims import claim_group
from lthvp.compute.executor import MAX_GROUP, NOT_STORED, GroupProgress, put_once
from lthvp.compute.jobs import CANCELLED, DONE, FAILED, HEARTBEAT_S, JobCancelled, JobQueue
from lthvp.results.config import RunConfig

Runner = Callable[..., object]  # run(config, store, progress=callable): one run that stores its own result
Execute = Callable[[list, list], list]  # (configs, progress callbacks) -> records, like runner.run_batch


class StopRequested(BaseException):
    """Raised in the main thread by the SIGTERM handler while a job runs (BaseException, like
    KeyboardInterrupt, so no ``except Exception`` inside a run swallows it)."""


def run_batch(configs: list[RunConfig], progress: list) -> list[dict]:
    """The default executor: :func:`lthvp.compute.runner.run_batch` (torch loads at the first job)."""
    from lthvp.compute.runner import run_batch as run

    return run(configs, progress)


def one_at_a_time(runner: Runner, store) -> Execute:
    """The batch protocol for a runner that takes one config and stores its own result (tests'
    stand-ins): each config in turn; its returned record, if any, is put by the worker."""
    def execute(configs, progress):
        out = [runner(c, store, progress=p) for c, p in zip(configs, progress)]
        return [getattr(r, "record", r) for r in out]
    return execute


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
                 heartbeat_s: float = HEARTBEAT_S, log=None, execute: Execute | None = None,
                 max_group: int | None = None, only=None):
        """``execute``: runs a claimed group (default :func:`lthvp.compute.runner.run_batch`);
        ``runner``: instead, one config at a time (groups of one); ``only``: claim only these job ids."""
        self.queue, self.store = queue, store
        self.execute = execute or (one_at_a_time(runner, store) if runner else run_batch)
        self.max_group = max_group or (1 if runner else MAX_GROUP)
        self.only = only
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.heartbeat_s = heartbeat_s
        self.current: list[str] = []  # the ids of the claimed jobs being run
        self._in_runner = False  # a stop signal interrupts the run only while this is set
        self._stop_signal: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.log = log or (lambda msg: print(f"[worker {self.id}] {msg}", file=sys.stderr, flush=True))

    # heartbeat thread ------------------------------------------------------------------------
    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                current = list(self.current)
                self.queue.worker_heartbeat(self.id, ",".join(current) or None)
                for job_id in current:
                    self.queue.heartbeat(job_id, self.id)
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
        return self.run_jobs([job])[0][1]

    def _keep(self, job_ids: list[str]):
        """Group progress: a run goes on while its job is this worker's and no cancel was asked."""
        def keep(i: int, p: dict) -> bool:
            state = self.queue.progress(job_ids[i], self.id, p)
            return not (state is None or state.get("cancel_requested") or state.get("worker") != self.id)
        return keep

    def run_jobs(self, jobs: list[dict]) -> list[tuple[str, str, str | None]]:
        """Run claimed jobs (one, or a group of one cell) together to final states; returns
        (job id, state, error) per job. A result already stored is not trained again."""
        ids = [job["id"] for job in jobs]
        self.current = list(ids)
        self.queue.worker_heartbeat(self.id, ",".join(ids))
        final = {jid: (DONE, None) for jid in ids if self.store.has(jid)}  # stored meanwhile
        todo = [job for job in jobs if job["id"] not in final]
        todo_ids = [job["id"] for job in todo]
        group = GroupProgress(todo_ids, self._keep(todo_ids))
        t0 = time.time()
        try:
            self._in_runner = True
            if self._stop.is_set():  # the signal came between the claim and here
                raise StopRequested()
            if todo:  # the configs parse inside the try: a bad config fails its jobs, not the worker
                records = self.execute([RunConfig.from_dict(job["config"]) for job in todo], group.callbacks())
                self._in_runner = False
                for i, (jid, record) in enumerate(zip(todo_ids, records)):
                    if i in group.dropped:  # cancelled (or taken over) while its group trained on
                        final[jid] = (CANCELLED, "cancelled while running")
                        continue
                    status, why = put_once(self.store, jid, record)
                    final[jid] = (FAILED, why) if status == NOT_STORED else (DONE, None)
        except (StopRequested, KeyboardInterrupt):
            self._in_runner, self.current = False, []
            for jid in todo_ids:
                self.queue.requeue(jid, self.id, f"worker {self.id} stopped after {time.time() - t0:.1f} s")
            self.log(f"{', '.join(todo_ids)} re-queued (worker stopped)")
            raise
        except JobCancelled:
            final.update({jid: (CANCELLED, "cancelled while running") for jid in todo_ids})
        except Exception as err:  # recorded on the jobs; the worker carries on
            final.update({jid: (FAILED, f"{type(err).__name__}: {err}") for jid in todo_ids})
            self.log(traceback.format_exc())
        finally:
            self._in_runner, self.current = False, []
        out = []
        for jid in ids:
            state, error = final[jid]
            self.queue.finish(jid, self.id, state, error)  # a job taken over meanwhile is left to its owner
            self.log(f"{jid} {state} in {time.time() - t0:.1f} s" + (f" ({error})" if error else ""))
            out.append((jid, state, error))
        return out

    def run_next(self) -> list[tuple[str, str, str | None]]:
        """Claim and run the next job or group (the claim first requeues dead workers' jobs);
        empty when nothing is runnable."""
        jobs = claim_group(self.queue, self.id, max_group=self.max_group, only=self.only)
        for job in jobs:  # complete: the claim checked and normalised each config
            c = job["config"]
            self.log(f"running {job['id']}: {c['method']} {c['dataset']} L{c['level']} {c['shots']}-shot "
                     f"seed {c['seed']} (for {job.get('submitted_by')!r})" + (f", {len(jobs)} together" if len(jobs) > 1 else ""))
        return self.run_jobs(jobs) if jobs else []

    def run_once(self) -> str | None:
        """Claim and run one job or group; the first job's final state, None when the queue is empty."""
        done = self.run_next()
        return done[0][1] if done else None

    def loop(self, once: bool = False, poll: float = 1.0, idle_exit_s: float | None = None) -> int:
        """Process jobs until stopped; ``once``: exit when the queue is empty."""
        if not (isinstance(poll, (int, float)) and 0 < poll < float("inf")):
            raise ValueError(f"poll must be a number of seconds > 0, got {poll!r}")
        self.start()
        idle_since = time.time()
        done = 0
        try:
            while not self._stop.is_set():
                if ran := self.run_next():
                    done += len(ran)
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
        from lthvp.compute.dask_cluster import parse_address

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
