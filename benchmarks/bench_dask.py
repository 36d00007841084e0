"""A small LP sweep three ways in one run: the local sequential loop, Dask local:1 and local:2
(worker processes on 127.0.0.1), each into its own empty store, plus Dask's per-task overhead
(a no-op task round trip). Prints a markdown table.

    .venv/bin/python benchmarks/bench_dask.py [--runs 12] [--epochs 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


from lthvp.compute.dask_sweep import dask_sweep  # noqa: E402
from lthvp.compute.runner import run  # noqa: E402
from lthvp.results.config import RunConfig  # noqa: E402
from lthvp.results.store import ResultStore  # noqa: E402


def configs(n: int, epochs: int) -> list[RunConfig]:
    """LP on the legacy mini family (shipped), levels x seeds, full data: seconds per run."""
    out = [RunConfig(family=None, dataset="digits", method="lp", level=lv, shots="full", seed=100 + sd, epochs=epochs)
           for sd in range(n) for lv in (0, 4)]
    return out[:n]


def noop(config_dict, threads):
    return {"hash": "x"}


def overhead(tasks: int = 50) -> float:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(noop, range(5), [1] * 5, pure=False))  # warm
        t0 = time.perf_counter()
        for i in range(tasks):  # sequential round trips: submit, run, return
            client.submit(noop, i, 1, pure=False).result()
        return (time.perf_counter() - t0) / tasks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    cfgs = configs(args.runs, args.epochs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = ResultStore(Path(tmp) / "local")
        for c in cfgs:
            run(c, store)
        rows.append(("local loop (1 process)", time.perf_counter() - t0))
        for n in (1, 2):
            t0 = time.perf_counter()
            report = dask_sweep(cfgs, ResultStore(Path(tmp) / f"dask{n}"), f"local:{n}", progress=False)
            assert report.done == len(cfgs) and not report.failed, report
            rows.append((f"Dask local:{n} (incl. cluster start)", time.perf_counter() - t0))
    per_task = overhead()
    base = rows[0][1]
    print(f"{len(cfgs)} LP runs (digits full, {args.epochs} epochs, legacy family levels 0/4)\n")
    print("| how | wall s | local loop / this |\n|---|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.1f} | {base / sec:.2f}x |")
    print(f"\nDask per-task overhead (no-op round trip, 1 worker): {1000 * per_task:.1f} ms")


if __name__ == "__main__":
    main()
