"""Job queue and worker: dedup, atomic claims across processes, cancel, failure, dead-worker requeue."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lthvp.compute.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobQueue
from lthvp.compute.worker import Worker
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve
from lthvp.results.store import ResultStore
from lthvp.ui.dashboard import describe_progress, fraction_done

REPO = Path(__file__).resolve().parent.parent


def cfg(**kw):
    base = dict(dataset="digits", method="lp", level=0, shots=1, seed=0, epochs=1)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def queue(store_dir):
    ResultStore(store_dir)
    return JobQueue.for_store(store_dir)


def fake_record(config):
    c = resolve(config)
    n = 10
    rel = {"bin_lower": [0.0], "bin_upper": [1.0], "count": [n], "accuracy": [0.5], "confidence": [0.6]}
    return {"hash": c.hash(), "config": c.to_dict(),
            "metrics": {"accuracy": 0.5, "ece": 0.1, "mce": 0.1, "nll": 1.0, "brier": 0.5},
            "reliability": rel, "remaining_fraction": 1.0, "best_epoch": 1, "curves": [],
            "timings": {"total_seconds": 0.01}, "provenance": {"created": "now"}}


def fake_runner(epochs=3, delay=0.0, fail=False):
    def run(config, store, progress=None):
        for e in range(1, epochs + 1):
            time.sleep(delay)
            if progress:
                progress({"epoch": e, "epochs": epochs, "train_loss": 1.0 / e, "train_acc": 0.5, "val_acc": 0.5,
                          "val_nll": 1.0})
        if fail:
            raise RuntimeError("boom")
        store.put(fake_record(config))
    return run


def test_duplicate_submissions_make_one_job(queue, store_dir):
    a = queue.submit(cfg(), user="alice")
    b = queue.submit(cfg(), user="bob")
    c = queue.submit(cfg(epochs=None).replace(epochs=resolve(cfg()).epochs), user="carol")  # resolves equal
    assert a.status == "queued" and b.status == "existing" and c.status == "existing"
    assert a.job_id == b.job_id == c.job_id == resolve(cfg()).hash()
    jobs = queue.jobs()
    assert len(jobs) == 1 and jobs[0]["submitters"] == ["alice", "bob", "carol"]
    assert jobs[0]["submitted_by"] == "alice" and jobs[0]["state"] == QUEUED


def test_stored_result_is_cached_not_queued(queue, store_dir):
    store = ResultStore(store_dir)
    store.put(fake_record(cfg()))
    sub = queue.submit(cfg(), store=store)
    assert sub.status == "cached" and queue.jobs() == []


def test_worker_runs_job_with_progress_and_result(queue, store_dir):
    store = ResultStore(store_dir)
    seen = []
    runner = fake_runner(epochs=3)

    def spy(config, store, progress=None):
        def wrapped(p):
            progress(p)
            seen.append(queue.get(resolve(config).hash())["progress"]["epoch"])
        runner(config, store, wrapped)

    queue.submit(cfg(), user="alice")
    assert Worker(queue, store, runner=spy).loop(once=True) == 1
    job = queue.get(resolve(cfg()).hash())
    assert job["state"] == DONE and seen == [1, 2, 3] and store.has(job["id"])
    assert job["progress"]["epoch"] == 3 and fraction_done(job) == 1.0
    assert "epoch 3/3" in describe_progress(job)
    assert queue.workers() == []  # unregistered on exit
    # done + stored: asking again is "cached"
    assert queue.submit(cfg(), store=store).status == "cached"


def test_failed_job_is_recorded_and_can_be_resubmitted(queue, store_dir):
    store = ResultStore(store_dir)
    queue.submit(cfg())
    Worker(queue, store, runner=fake_runner(fail=True), log=lambda m: None).loop(once=True)
    job = queue.get(resolve(cfg()).hash())
    assert job["state"] == FAILED and "boom" in job["error"]
    again = queue.submit(cfg(), user="bob")
    assert again.status == "requeued" and queue.get(again.job_id)["state"] == QUEUED


def test_cancel_queued_and_running(queue, store_dir):
    store = ResultStore(store_dir)
    queue.submit(cfg(seed=1))
    assert queue.cancel(resolve(cfg(seed=1)).hash())["state"] == CANCELLED

    queue.submit(cfg(seed=2))
    worker = Worker(queue, store, runner=fake_runner(epochs=200, delay=0.02), log=lambda m: None)
    t = threading.Thread(target=worker.loop, kwargs={"once": True})
    t.start()
    key = resolve(cfg(seed=2)).hash()
    deadline = time.time() + 10
    while (queue.get(key)["progress"] or {}).get("epoch", 0) < 2 and time.time() < deadline:
        time.sleep(0.02)
    queue.cancel(key, user="bob")
    t.join(timeout=15)
    job = queue.get(key)
    assert job["state"] == CANCELLED and job["cancelled_by"] == "bob"
    assert job["progress"]["epoch"] < 200 and not store.has(key)


WORKER_SCRIPT = textwrap.dedent("""
    import sys, time, os
    from lthvp.compute.jobs import JobQueue
    from lthvp.compute.worker import Worker
    from lthvp.results.store import ResultStore
    sys.path.insert(0, {tests!r})
    from test_jobs import fake_record
    store_dir, log, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    q, s = JobQueue.for_store(store_dir), ResultStore(store_dir)
    def run(config, store, progress=None):
        with open(log, "a") as f:
            f.write(f"{{os.getpid()}} {{config.hash()}}\\n")
        progress({{"epoch": 1, "epochs": 1, "train_loss": 0.0, "train_acc": 1.0, "val_acc": 1.0, "val_nll": 0.0}})
        time.sleep(delay)
        store.put(fake_record(config))
    Worker(q, s, runner=run, log=lambda m: None).loop(once=True, poll=0.01)
""")


def spawn_worker(store_dir, log, delay):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = WORKER_SCRIPT.format(tests=str(REPO / "tests"))
    return subprocess.Popen([sys.executable, "-c", code, str(store_dir), str(log), str(delay)], env=env,
                            start_new_session=True)


def test_two_workers_never_run_one_job_twice(queue, store_dir, tmp_path):
    configs = [cfg(seed=s) for s in range(30)]
    for c in configs:
        queue.submit(c)
    log = tmp_path / "claims.log"
    procs = [spawn_worker(store_dir, log, 0.01) for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    lines = log.read_text().split()
    ran = lines[1::2]
    assert sorted(ran) == sorted(resolve(c).hash() for c in configs)  # each exactly once
    assert len(lines) == 60 and len(set(lines[0::2])) <= 3  # 30 claims, all by the three workers
    assert all(j["state"] == DONE for j in queue.jobs())
    assert len(ResultStore(store_dir)) == 30


def test_killed_worker_job_is_put_back_in_line(queue, store_dir, tmp_path):
    queue.submit(cfg(seed=7))
    key = resolve(cfg(seed=7)).hash()
    proc = spawn_worker(store_dir, tmp_path / "log", 120)
    deadline = time.time() + 60
    while queue.get(key)["state"] != RUNNING and time.time() < deadline:
        time.sleep(0.05)
    assert queue.get(key)["state"] == RUNNING and queue.get(key)["pid"] == proc.pid
    assert [w["pid"] for w in queue.workers()] == [proc.pid]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert queue.reap() == [key]
    job = queue.get(key)
    assert job["state"] == QUEUED and job["lost"] == 1 and str(proc.pid) in job["requeued"]
    assert queue.workers() == []  # its heartbeat record is dead too
    assert queue.submit(cfg(seed=7)).status == "existing"  # still in line: no second job
    assert queue.claim("next")["attempts"] == 2


def test_stale_heartbeat_on_another_host_is_requeued(queue):
    queue.submit(cfg(seed=8))
    job = queue.claim("remote-worker", pid=1)
    with queue.cache.transact():
        job = queue.get(job["id"])
        job.update(host="gpu-node-7", heartbeat=time.time() - 3600)
        queue._set("job:" + job["id"], job)
    assert queue.reap() == [job["id"]] and queue.get(job["id"])["state"] == QUEUED
    assert "gpu-node-7" in queue.get(job["id"])["requeued"]
    queue.claim("remote-worker", pid=1)  # take it again so the next submission is the only queued job
    # a fresh heartbeat from another host is trusted (its pid cannot be checked here)
    queue.submit(cfg(seed=9))
    other = queue.claim("remote-worker", pid=999999)
    with queue.cache.transact():
        j = queue.get(other["id"])
        j["host"] = "gpu-node-7"
        queue._set("job:" + j["id"], j)
    assert queue.reap() == []


def test_claim_is_fifo_and_version_changes(queue):
    v0 = queue.version
    for s in (3, 1, 2):
        queue.submit(cfg(seed=s))
    assert queue.version > v0
    order = [queue.claim("w")["config"]["seed"] for _ in range(3)]
    assert order == [3, 1, 2] and queue.claim("w") is None


@pytest.mark.slow
def test_cli_worker_runs_a_real_job(store_dir):
    """`python -m lthvp worker --once` runs a real tiny LP job and stores it."""
    store = ResultStore(store_dir)
    queue = JobQueue.for_store(store_dir)
    sub = queue.submit(cfg(seed=0, epochs=1), user="ci")
    env = dict(os.environ, OMP_NUM_THREADS="1", LTHVP_WORKER_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "lthvp", "worker", "--store", str(store_dir), "--once"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    job = queue.get(sub.job_id)
    assert job["state"] == DONE, job
    assert job["progress"]["epoch"] == 1 and store.has(sub.job_id)
    import torch

    from lthvp.compute.runner import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker ran it
    try:
        local = run(cfg(seed=0, epochs=1)).record
    finally:
        torch.set_num_threads(threads)
    assert store.get(sub.job_id)["metrics"] == pytest.approx(local["metrics"], abs=1e-6)


def test_worker_start_is_retried_once_the_started_worker_has_exited(tmp_path):
    """A job submitted soon after the last automatic start must not wait for the 60 s window:
    if the worker started then has exited, the next poll may start another one."""
    import subprocess

    q = JobQueue(tmp_path / "jobs")
    assert q.try_mark_spawn()
    assert not q.try_mark_spawn()  # someone is starting one right now
    q.record_spawn(os.getpid())  # alive: still no second start
    assert not q.try_mark_spawn()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    q.record_spawn(gone.pid)  # exited (a --once worker that found nothing to do)
    assert q.try_mark_spawn()
