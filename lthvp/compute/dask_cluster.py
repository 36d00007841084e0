"""Reaching a Dask cluster: ``--dask local:N`` (a LocalCluster started here, loopback only) or
``--dask tcp://HOST:PORT`` (a running scheduler). Shared by ``sweep --dask`` and ``worker --dask``.

Every cluster this module starts listens on 127.0.0.1 only (:data:`LOOPBACK`): its scheduler,
nannies and workers, with no dashboards. Dask's protocol is unauthenticated pickle, so a port on
another interface would let anyone who reaches it run code here.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"  # the only interface a cluster started here listens on


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
            cluster = LocalCluster(n_workers=where, threads_per_worker=1, processes=True, host=LOOPBACK,
                                   dashboard_address=None, worker_dashboard_address=None, **extra)
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


