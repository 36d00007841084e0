"""Run a sweep on a Dask cluster: ``python -m lthvp sweep --dask local:N | tcp://HOST:PORT [--gpu]``.

Submit and drain, as the local sweep (:mod:`lthvp.compute.sweep`): the grid's unstored runs go to
the store's job queue and :class:`lthvp.compute.dask_queue.DaskQueueDrain` drains exactly those onto
the cluster. Workers compute, the client stores: each task runs a job, or a cell's seeds together
(``runner.run_batch``, no store), on a worker and returns the plain-JSON records; the client is
the only writer of the results store and puts each record as it arrives, once. Workers need the package installed
(``pip install -e .``), the ticket files and the datasets, nothing else; a standalone scheduler
needs the package too (it unpickles the task, i.e. imports ``lthvp.compute.dask_sweep``). See
docs/DISTRIBUTED.md.

A task whose worker process dies is rescheduled on another worker by the scheduler, up to
``distributed.scheduler.allowed-failures`` deaths (default 3) before it fails with ``KilledWorker``;
a run that raises fails its job. Either way a failed config is reported, never fatal for the rest
of the sweep, and running the sweep again retries only the failed ones. Every cluster this module
starts listens on 127.0.0.1 only (:data:`LOOPBACK`).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable

from lthvp.compute.dask_cluster import LOOPBACK, dask_client, parse_address
from lthvp.compute.executor import one_line
from lthvp.compute.sweep import SweepReport
from lthvp.results.config import RunConfig

__all__ = ["LOOPBACK", "SweepReport", "dask_client", "dask_sweep", "one_line", "parse_address", "run_task"]


def run_task(config_dict: dict, threads: int | None = 1) -> dict:
    """What a worker executes: one run, no store (the client writes), the plain-JSON record back."""
    import torch

    from lthvp.compute.runner import run

    if threads:
        torch.set_num_threads(int(threads))
    cfg = RunConfig.from_dict(config_dict)
    return run(cfg, store=None).record


def _label(cfg: dict) -> str:
    family = "legacy" if cfg.get("family") is None else cfg["family"]
    return f"{cfg['method']} F{family} L{cfg['level']} {cfg['shots']}-shot s{cfg['seed']}"


def dask_sweep(configs: Iterable[RunConfig], store, address: str, progress: bool = True, gpu: bool = False,
               threads: int | None = None, worker_timeout: float = 120.0,
               task: Callable[[dict, int | None], dict] | None = None) -> SweepReport:
    """Submit ``configs`` to the store's job queue and drain those jobs on Dask, putting every
    record into ``store`` (the client is the single writer).

    ``address``: ``local:N`` (a LocalCluster of N one-thread worker processes on 127.0.0.1, closed
    afterwards) or ``tcp://HOST:PORT`` (a running scheduler). ``threads``: torch threads per task
    (default: cores // N for local:N, 1 for a remote cluster). ``gpu``: each task needs one
    ``GPU`` resource. ``task(config_dict, threads)``: what the workers run per config instead of
    the grouped ``runner.run_batch`` (tests substitute a wrapper of :func:`run_task`).
    """
    from tqdm import tqdm

    from lthvp.compute.dask_queue import DaskQueueDrain
    from lthvp.compute.jobs import JobQueue
    from lthvp.compute.sweep import cancel_unstarted, report, submit

    parse_address(address)  # a bad address fails before anything else
    t0 = time.time()
    queue = JobQueue.for_store(store.directory)
    sub = submit(configs, store, queue)
    print(f"dask sweep: {len(sub.ids) + sub.skipped} runs, {sub.skipped} already stored or repeated, "
          f"{len(sub.ids)} to run on {address}", file=sys.stderr)
    if not sub.ids:
        return report(queue, store, sub, t0)
    bar = tqdm(total=len(sub.ids), desc="dask sweep", file=sys.stderr, dynamic_ncols=True, leave=False,
               disable=not progress)

    def finished(job: dict, state: str, error: str | None) -> None:
        if error is not None:
            bar.write(f"{state} {_label(job['config'])}: {error}", file=sys.stderr)
        bar.set_postfix_str(_label(job["config"]))
        bar.update(1)

    try:
        with dask_client(address, gpu, worker_timeout) as (client, default_threads):
            drain = DaskQueueDrain(queue, store, sum(client.nthreads().values()) or 1, gpu=gpu, only=set(sub.ids),
                                   task=task, on_finish=finished, log=lambda msg: None)
            drain.loop(client, threads or default_threads, once=True, poll=0.2)
    finally:
        bar.close()
        cancel_unstarted(queue, sub)
    out = report(queue, store, sub, t0)
    print(f"dask sweep finished in {out.seconds:.0f} s ({out.done} stored, {out.skipped} skipped, "
          f"{len(out.failed)} failed)", file=sys.stderr)
    return out
