"""Dask backend for sweeps: real schedulers and worker processes, all on 127.0.0.1."""

from __future__ import annotations

import functools
import os
import sys

import pytest

from lthvp.config import RunConfig
from lthvp.dask_sweep import dask_sweep, parse_address, run_task
from lthvp.presets import resolve
from lthvp.runner import run
from lthvp.store import ResultStore

distributed = pytest.importorskip("distributed")


def tiny(level=0, seed=0, **kw) -> RunConfig:
    """LP on the legacy shipped mini family: a couple of seconds per run."""
    return RunConfig(family=None, dataset="digits", method="lp", level=level, shots=1, seed=seed, epochs=1, **kw)


def test_parse_address_accepts():
    assert parse_address("local:1") == ("local", 1)
    assert parse_address("local:8") == ("local", 8)
    assert parse_address("tcp://127.0.0.1:8786") == ("tcp", "tcp://127.0.0.1:8786")
    assert parse_address(" tcp://node-3.lab:9000 ") == ("tcp", "tcp://node-3.lab:9000")


@pytest.mark.parametrize("spec", ["local:0", "local:-1", "local:x", "local:", "local", "2", "",
                                  "tcp://127.0.0.1", "tcp://:8786", "tcp://127.0.0.1:0", "tcp://127.0.0.1:99999",
                                  "tcp://127.0.0.1:port", "tcp://127.0.0.1:8786/x", "tls://127.0.0.1:8786",
                                  "127.0.0.1:8786", None])
def test_parse_address_rejects(spec):
    with pytest.raises(ValueError, match="local:N|tcp://HOST:PORT"):
        parse_address(spec)


def _listening_ips() -> set[str]:
    import psutil

    procs = [psutil.Process()] + psutil.Process().children(recursive=True)
    ips = set()
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        ips |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
    return ips


@pytest.fixture(scope="module")
def cluster():
    """One scheduler + 2 one-thread worker processes (with nannies), shared by the tcp:// tests."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as c:
        yield c


@pytest.mark.slow
def test_local_sweep_stores_each_result_once_and_matches_run(tmp_path):
    store = ResultStore(tmp_path / "s")
    configs = [tiny(0, 0), tiny(1, 0), tiny(0, 1), tiny(0, 0)]  # the repeat is run once
    report = dask_sweep(configs, store, "local:2", progress=False, threads=1)  # as this process
    assert (report.done, report.skipped, report.failed) == (3, 1, [])
    assert store.version == 3  # three puts, no double writes
    assert sorted(store.hashes()) == sorted({resolve(c).hash() for c in configs})
    local = run(tiny(1, 0))  # the same config in this process: the same numbers
    assert store.get(local.hash)["metrics"] == pytest.approx(local.metrics, abs=1e-9)
    assert store.get(local.hash)["config"] == local.record["config"]
    again = dask_sweep(configs, store, "local:2", progress=False)  # nothing to do: no cluster started
    assert (again.done, again.skipped, again.failed) == (0, 4, [])
    assert store.version == 3


@pytest.mark.slow
def test_failing_config_is_reported_and_the_rest_stored(tmp_path, cluster, capsys):
    store = ResultStore(tmp_path / "s")
    bad = tiny(99, 0)
    report = dask_sweep([tiny(2, 0), bad], store, cluster.scheduler_address, progress=False)
    assert report.done == 1 and store.has(resolve(tiny(2, 0)).hash()) and len(store) == 1
    ((config, message),) = report.failed
    assert config == resolve(bad).to_dict()
    assert "FileNotFoundError" in message and "level 99" in message and "\n" not in message
    assert "failed lp Flegacy L99" in capsys.readouterr().err


def _die_on_first_attempt(config_dict, threads, marker, attempts):
    """Kill this worker process (no exception, no cleanup) the first time; run normally after."""
    with open(attempts, "a") as f:
        f.write(f"{os.getpid()}\n")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return run_task(config_dict, threads)


@pytest.mark.slow
def test_worker_death_is_retried_and_stored_once(tmp_path, cluster):
    import cloudpickle

    store = ResultStore(tmp_path / "s")
    marker, attempts = tmp_path / "died", tmp_path / "attempts"
    task = functools.partial(_die_on_first_attempt, marker=str(marker), attempts=str(attempts))
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # workers need not import the tests
    try:
        report = dask_sweep([tiny(3, 0)], store, cluster.scheduler_address, progress=False, task=task)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert marker.exists()
    pids = attempts.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # rescheduled after the death, on another process
    assert (report.done, report.failed) == (1, [])
    assert store.hashes() == [resolve(tiny(3, 0)).hash()] and store.version == 1


@pytest.mark.slow
def test_scheduler_and_workers_bind_only_loopback(cluster):
    from distributed import Client

    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    with Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) >= 2
        for address, info in workers.items():
            assert address.startswith("tcp://127.0.0.1:")
            assert info.get("nanny", "tcp://127.0.0.1:").startswith("tcp://127.0.0.1:")
    listening = _listening_ips()
    assert listening and listening <= {"127.0.0.1"}, listening


@pytest.mark.slow
def test_gpu_sweep_refuses_a_cluster_without_gpu_workers(tmp_path, cluster):
    store = ResultStore(tmp_path / "s")
    with pytest.raises(ValueError, match="resources GPU=1"):
        dask_sweep([tiny(0, 0)], store, cluster.scheduler_address, progress=False, gpu=True)
    assert len(store) == 0


@pytest.mark.slow
def test_cli_sweep_through_a_running_scheduler(tmp_path, cluster, capsys):
    """`python -m lthvp sweep --dask tcp://...` against real scheduler + worker processes on
    127.0.0.1: every config stored once; a rerun stores nothing new."""
    from lthvp.cli import main

    args = ["sweep", "--family", "legacy", "--method", "lp", "--level", "0", "1", "--shots", "1", "--seed", "3",
            "--epochs", "1", "--dask", cluster.scheduler_address, "--store", str(tmp_path / "s")]
    assert main(args) == 0
    store = ResultStore(tmp_path / "s")
    wanted = {resolve(tiny(level=lv, seed=3)).hash() for lv in (0, 1)}
    assert wanted <= set(store.hashes())
    version = store.version
    assert main(args) == 0 and ResultStore(tmp_path / "s").version == version


@pytest.mark.slow
def test_unreachable_scheduler_is_one_line(tmp_path, capsys):
    from lthvp.cli import main

    code = main(["sweep", "--family", "legacy", "--method", "lp", "--level", "0", "--shots", "1", "--seed", "4",
                 "--epochs", "1", "--dask", "tcp://127.0.0.1:9", "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
