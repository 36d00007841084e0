"""Dask backend for sweeps: real schedulers and worker processes, all on 127.0.0.1."""

from __future__ import annotations

import functools
import os
import sys

import pytest

from lthvp.compute.dask_sweep import dask_sweep, parse_address, run_task
from lthvp.compute.runner import run
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve
from lthvp.results.store import ResultStore

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
    from lthvp.commands.cli import main

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
    from lthvp.commands.cli import main

    code = main(["sweep", "--family", "legacy", "--method", "lp", "--level", "0", "--shots", "1", "--seed", "4",
                 "--epochs", "1", "--dask", "tcp://127.0.0.1:9", "--store", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")


def _watch(queue, job_ids, seen: dict, stop, cancel_when_running: str | None = None):
    """Poll the queue as the Run page does: record progress seen per job; optionally cancel one
    job (as its submitter would) once it reports progress."""
    import time

    while not stop.is_set():
        for jid in job_ids:
            job = queue.get(jid) or {}
            if job.get("progress"):
                seen.setdefault(jid, job["progress"])
                if jid == cancel_when_running:
                    queue.cancel(jid, user="alice")
        time.sleep(0.05)


@pytest.mark.slow
def test_worker_dask_drains_the_job_queue(tmp_path, cluster, capsys):
    """`python -m lthvp worker --dask tcp://... --once`: queued jobs run on the cluster's worker
    processes, progress reaches the queue while they run, results are stored once by the drain."""
    import threading

    from lthvp.commands.cli import main
    from lthvp.compute.jobs import DONE, JobQueue

    directory = tmp_path / "s"
    queue = JobQueue.for_store(directory)
    configs = [tiny(level=lv, seed=5) for lv in (0, 1, 2)]
    ids = [queue.submit(c, user="alice").job_id for c in configs]
    seen, stop = {}, threading.Event()
    watcher = threading.Thread(target=_watch, args=(queue, ids, seen, stop), daemon=True)
    watcher.start()
    try:
        code = main(["worker", "--dask", cluster.scheduler_address, "--in-flight", "2", "--once", "--poll", "0.2",
                     "--store", str(directory)])
    finally:
        stop.set()
        watcher.join()
    assert code == 0, capsys.readouterr().err
    assert [queue.get(j)["state"] for j in ids] == [DONE] * 3
    store = ResultStore(directory)
    assert set(ids) <= set(store.hashes()) and all(store.get(j)["config"] == resolve(c).to_dict()
                                                     for j, c in zip(ids, configs))
    assert seen, "no progress reached the queue while the jobs ran"
    assert not queue.workers(), "the drain unregisters when it exits"


@pytest.mark.slow
def test_worker_dask_cancel_from_the_run_page(tmp_path, cluster):
    """A cancel requested while the job runs on a cluster worker stops it at its next progress step:
    the job ends cancelled and nothing is stored."""
    import threading

    from distributed import Client

    from lthvp.compute.dask_queue import DaskQueueDrain
    from lthvp.compute.jobs import CANCELLED, JobQueue

    directory = tmp_path / "s"
    store, queue = ResultStore(directory), JobQueue.for_store(directory)
    slow = RunConfig(family=None, dataset="digits", method="vp", level=0, shots="full", seed=6, epochs=50)
    jid = queue.submit(slow, user="alice").job_id
    seen, stop = {}, threading.Event()
    watcher = threading.Thread(target=_watch, args=(queue, [jid], seen, stop, jid), daemon=True)
    watcher.start()
    try:
        with Client(cluster.scheduler_address) as client:
            DaskQueueDrain(queue, store, in_flight=1).loop(client, threads=1, once=True, poll=0.2)
    finally:
        stop.set()
        watcher.join()
    job = queue.get(jid)
    assert jid in seen and job["state"] == CANCELLED and job["cancelled_by"] == "alice"
    assert not store.has(jid)


def test_worker_dask_options_are_validated(tmp_path, capsys):
    from lthvp.commands.cli import main

    with pytest.raises(SystemExit):
        main(["worker", "--dask", "local:1", "--in-flight", "0"])
    assert "integer >= 1" in capsys.readouterr().err
    assert main(["worker", "--dask", "local:zero", "--once", "--store", str(tmp_path / "s")]) == 2
    assert "local:N" in capsys.readouterr().err
    assert main(["worker", "--in-flight", "2", "--once", "--store", str(tmp_path / "s")]) == 2
    assert "need --dask" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before any store was opened


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_standing_cluster_needs_no_pythonpath(tmp_path):
    """The installed package is all a standing cluster needs: `dask scheduler` and `dask worker`
    started as the docs say, outside the repository and with no PYTHONPATH, run an
    `lthvp sweep --dask` (the console script) to the end."""
    import shutil
    import subprocess
    import time

    bin_dir = os.path.dirname(sys.executable)
    dask, lthvp = os.path.join(bin_dir, "dask"), shutil.which("lthvp", path=bin_dir)
    assert lthvp, "the lthvp console script is missing: pip install -e ."
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", LTHVP_FEATURES=str(tmp_path / "features"), LTHVP_BUNDLES=str(tmp_path / "none"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address",
                               "127.0.0.1:0"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        time.sleep(3)
        procs.append(subprocess.Popen([dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                       "--dashboard-address", "127.0.0.1:0"], cwd=tmp_path, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        out = subprocess.run([lthvp, "sweep", "--family", "legacy", "--method", "lp", "--level", "0", "--shots", "1",
                              "--seed", "4", "--epochs", "1", "--dask", address, "--store", str(tmp_path / "s")],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert resolve(tiny(level=0, seed=4)).hash() in ResultStore(tmp_path / "s").hashes()
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
