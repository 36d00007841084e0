"""Run a sweep on a Dask cluster: ``python -m lthvp sweep --dask local:N | tcp://HOST:PORT [--gpu]``.

Workers compute, the client stores: each task runs :func:`run_task` (one ``run(cfg, store=None)``)
on a worker and returns the plain-JSON record; the client is the only writer of the results
store and puts each record as it arrives, once. Workers need the package installed
(``pip install -e .``), the ticket files and the datasets, nothing else; a standalone scheduler
needs the package too (it unpickles the task, i.e. imports ``lthvp.compute.dask_sweep``). See
docs/DISTRIBUTED.md.

Retries: a task that raises is retried ``retries`` times (``client.submit(retries=...)``); a task
whose worker process dies is rescheduled on another worker by the scheduler, up to
``distributed.scheduler.allowed-failures`` deaths (default 3) before it fails with ``KilledWorker``.
Either way a failed config is reported, never fatal for the rest of the sweep.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urlsplit

from lthvp.results.config import RunConfig
from lthvp.results.run_record import RunRecord

TASK_RETRIES = 2


@dataclass
class SweepReport:
    """What a distributed sweep did: results stored, configs skipped (already stored or repeated),
    failures as (resolved config dict, one-line error), wall seconds."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[dict, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_address(spec: str) -> tuple[str, int] | tuple[str, str]:
    """``local:N`` -> ("local", N); ``tcp://HOST:PORT`` -> ("tcp", "tcp://HOST:PORT")."""
    if not isinstance(spec, str):
        raise ValueError(f"--dask must be local:N or tcp://HOST:PORT, got {spec!r}")
    text = spec.strip()
    if text.startswith("local:"):
        count = text[len("local:"):]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--dask local:N needs an integer N >= 1 (worker processes), got {spec!r}")
        return "local", int(count)
    if text.startswith("tcp://"):
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = None
        if (not parts.hostname or port is None or not 0 < port < 65536 or parts.path or parts.query
                or parts.fragment or parts.username or parts.password):
            raise ValueError(f"--dask tcp:// address must be tcp://HOST:PORT (port 1-65535), got {spec!r}")
        return "tcp", text
    raise ValueError(f"--dask must be local:N (N worker processes here) or tcp://HOST:PORT (a running "
                     f"dask scheduler), got {spec!r}")


def run_task(config_dict: dict, threads: int | None = 1) -> dict:
    """What a worker executes: one run, no store (the client writes), the plain-JSON record back."""
    import torch

    from lthvp.compute.runner import run

    if threads:
        torch.set_num_threads(int(threads))
    cfg = RunConfig.from_dict(config_dict)
    return run(cfg, store=None).record


def one_line(err: BaseException | object) -> str:
    """``Type: message`` on one line (whitespace collapsed, shortened), with its cause when one came back."""
    def short(e, limit):
        text = " ".join(str(e).split())
        text = text if len(text) <= limit else text[:limit - 3] + "..."
        return f"{type(e).__name__}: {text}" if text else type(e).__name__

    if not isinstance(err, BaseException):
        return " ".join(str(err).split())[:200]
    cause = err.__cause__
    return short(err, 200) + (f" (caused by {short(cause, 160)})" if cause is not None else "")


def task_failure(future, result, key: str) -> str | None:
    """None when a finished task returned the record of ``key``; else why not, on one line."""
    if future.status == "error":  # result is (type, exception, traceback)
        return one_line(result[1] if isinstance(result, tuple) and len(result) == 3 else result)
    if future.status != "finished" or isinstance(result, BaseException):
        return one_line(result) if isinstance(result, BaseException) else f"task {future.status}"
    if not isinstance(result, dict) or result.get("hash") != key:
        got = result.get("hash") if isinstance(result, dict) else type(result).__name__
        return f"HashMismatch: the worker returned {got}, expected {key} (different code on the worker?)"
    return None


def _label(cfg: dict) -> str:
    family = "legacy" if cfg.get("family") is None else cfg["family"]
    return f"{cfg['method']} F{family} L{cfg['level']} {cfg['shots']}-shot s{cfg['seed']}"


def _check_gpu_workers(client) -> None:
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    if not any((w.get("resources") or {}).get("GPU") for w in workers.values()):
        raise ValueError("--gpu: no connected Dask worker advertises a GPU resource; start the workers with "
                         "`dask worker ... --resources GPU=1` (the tasks would otherwise wait forever)")


CONNECT_TIMEOUT_S = 10.0


@contextmanager
def dask_client(address: str, gpu: bool = False, worker_timeout: float = 120.0):
    """``(client, torch threads per task)`` for ``local:N`` (a LocalCluster of N one-thread worker
    processes on 127.0.0.1, closed on exit; cores // N threads per task) or ``tcp://HOST:PORT`` (a
    running scheduler, one thread per task); waits for a worker and, with ``gpu``, checks that one
    advertises a GPU resource. An unreachable scheduler is a one-line ValueError."""
    from distributed import Client, LocalCluster

    kind, where = parse_address(address)
    cluster = client = None
    try:
        if kind == "local":
            extra = {"resources": {"GPU": 1}} if gpu else {}
            cluster = LocalCluster(n_workers=where, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, **extra)
            client = Client(cluster)
            threads = max(1, (os.cpu_count() or 1) // where)
        else:
            try:
                client = Client(where, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as err:
                raise ValueError(f"cannot reach the Dask scheduler at {where} within {CONNECT_TIMEOUT_S:.0f} s "
                                 f"({type(err).__name__}); is `dask scheduler` running there?") from None
            threads = 1
        client.wait_for_workers(1, timeout=worker_timeout)
        if gpu:
            _check_gpu_workers(client)
        yield client, threads
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def dask_sweep(configs: Iterable[RunConfig], store, address: str, progress: bool = True, gpu: bool = False,
               threads: int | None = None, worker_timeout: float = 120.0,
               task: Callable[[dict, int | None], dict] = run_task) -> SweepReport:
    """Run ``configs`` on Dask and put every record into ``store`` (the client is the single writer).

    ``address``: ``local:N`` (a LocalCluster of N one-thread worker processes on 127.0.0.1, closed
    afterwards) or ``tcp://HOST:PORT`` (a running scheduler). ``threads``: torch threads per task
    (default: cores // N for local:N, 1 for a remote cluster). ``gpu``: each task needs one
    ``GPU`` resource. ``task`` is what the workers run (tests substitute a wrapper of run_task).
    """
    from distributed import as_completed
    from tqdm import tqdm

    from lthvp.results.presets import resolve

    parse_address(address)  # a bad address fails before anything else
    t0 = time.time()
    report = SweepReport()
    todo: dict[str, RunConfig] = {}
    for cfg in configs:
        key = resolve(cfg).hash()
        if store.has(key) or key in todo:
            report.skipped += 1
        else:
            todo[key] = cfg
    print(f"dask sweep: {len(todo) + report.skipped} runs, {report.skipped} already stored or repeated, "
          f"{len(todo)} to run on {address}", file=sys.stderr)
    if not todo:
        report.seconds = time.time() - t0
        return report

    with dask_client(address, gpu, worker_timeout) as (client, default_threads):
        threads = threads or default_threads
        futures = {}
        for key, cfg in todo.items():
            future = client.submit(task, cfg.to_dict(), threads, key=f"lthvp-{key}", pure=False,
                                   retries=TASK_RETRIES, resources={"GPU": 1} if gpu else None)
            futures[future] = (key, cfg)
        bar = tqdm(total=len(futures), desc="dask sweep", file=sys.stderr, dynamic_ncols=True, leave=False,
                   disable=not progress)
        for future, result in as_completed(list(futures), with_results=True, raise_errors=False):
            key, cfg = futures.pop(future)
            config = resolve(cfg).to_dict()
            message = task_failure(future, result, key)
            if message is None:
                if store.has(key):  # written meanwhile (another client): keep exactly one copy
                    report.skipped += 1
                else:
                    try:
                        store.put(RunRecord.from_json(result))  # the worker's JSON, validated
                        report.done += 1
                    except (TypeError, ValueError) as err:  # not plain JSON (e.g. NaN): report, go on
                        message = f"not stored: {one_line(err)}"
            if message is not None:
                report.failed.append((config, message))
                bar.write(f"failed {_label(config)}: {message}", file=sys.stderr)
            future.release()
            bar.set_postfix_str(_label(config))
            bar.update(1)
        bar.close()
    report.seconds = time.time() - t0
    print(f"dask sweep finished in {report.seconds:.0f} s ({report.done} stored, {report.skipped} skipped, "
          f"{len(report.failed)} failed)", file=sys.stderr)
    return report
