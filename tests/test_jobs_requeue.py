"""At-least-once jobs with one owner: a dead worker's job goes back in line (up to MAX_ATTEMPTS), a
malformed job fails at claim and the worker goes on, and a kill -9 mid-job costs one rerun, not the job."""

import os
import signal
import time

import pytest
from test_jobs import cfg, fake_runner, spawn_worker

from lthvp.compute.jobs import CANCELLED, DONE, FAILED, JOB, MAX_ATTEMPTS, QUEUED, RUNNING, STALE_S, JobQueue
from lthvp.compute.worker import Worker
from lthvp.results.presets import resolve
from lthvp.results.store import ResultStore


@pytest.fixture
def store_dir(tmp_path):
    ResultStore(tmp_path / "store")
    return tmp_path / "store"


@pytest.fixture
def queue(store_dir):
    return JobQueue.for_store(store_dir)


def silence_for(queue, job_id, seconds):
    """Fake clock: the job's last heartbeat was ``seconds`` ago (its worker's pid, ours, stays alive)."""
    with queue.cache.transact():
        job = queue.get(job_id)
        job["heartbeat"] = time.time() - seconds
        queue._set(JOB + job_id, job)


def test_settings_are_the_documented_ones():
    assert (STALE_S, MAX_ATTEMPTS) == (30.0, 3)


def test_a_silent_worker_loses_its_job_to_the_next_claim_then_it_fails_after_max_attempts(queue):
    key = queue.submit(cfg(seed=1)).job_id
    assert queue.claim("w1")["worker"] == "w1"
    silence_for(queue, key, STALE_S - 5)  # slow but within the timeout: still w1's
    assert queue.claim("w2") is None and queue.get(key)["worker"] == "w1"
    for n, worker in ((1, "w2"), (2, "w3")):
        silence_for(queue, key, STALE_S + 1)
        job = queue.claim(worker)  # the claim sweeps the dead job back in line and takes it
        assert (job["id"], job["worker"], job["state"]) == (key, worker, RUNNING)
        assert job["attempts"] == n + 1 and job["lost"] == n and f"worker w{n} " in job["requeued"]
    silence_for(queue, key, STALE_S + 1)
    assert queue.claim("w4") is None
    job = queue.get(key)
    assert job["state"] == FAILED and job["lost"] == MAX_ATTEMPTS == 3 and job["attempts"] == 3
    assert "worker w3 " in job["error"] and "stopped heartbeating" in job["error"] and "3 of 3" in job["error"]
    again = queue.submit(cfg(seed=1))  # asking again gives it fresh attempts
    assert again.status == "requeued" and again.job["attempts"] == 3 and "lost" not in again.job
    assert queue.claim("w5")["worker"] == "w5" and "lost" not in queue.get(key)


def test_the_old_owner_cannot_touch_a_job_taken_over(queue):
    key = queue.submit(cfg(seed=2)).job_id
    queue.claim("old")
    silence_for(queue, key, STALE_S + 1)
    assert queue.claim("new")["worker"] == "new"
    assert queue.heartbeat(key, "old")["worker"] == "new"  # returns the job, changes nothing
    queue.finish(key, "old", DONE)
    queue.requeue(key, "old", "stopping")
    job = queue.get(key)
    assert (job["state"], job["worker"]) == (RUNNING, "new")


def test_reap_requeues_like_claim_and_a_cancelled_dead_job_ends_cancelled(queue):
    a, b = queue.submit(cfg(seed=3)).job_id, queue.submit(cfg(seed=4)).job_id
    assert [queue.claim("w")["id"], queue.claim("w")["id"]] == [a, b]
    queue.cancel(b, user="bob")
    assert queue.reap() == []  # both alive
    silence_for(queue, a, STALE_S + 1)
    silence_for(queue, b, STALE_S + 1)
    assert sorted(queue.reap()) == sorted([a, b])
    assert queue.get(a)["state"] == QUEUED and queue.get(b)["state"] == CANCELLED


def write_job(queue, job_id, config, seq):
    queue._set(JOB + job_id, {"id": job_id, "config": config, "state": QUEUED, "seq": seq, "submitted_by": "hand"})


def test_malformed_jobs_fail_at_claim_and_the_worker_goes_on(queue, store_dir):
    good = resolve(cfg(seed=5))
    no_dataset = {k: v for k, v in good.to_dict().items() if k != "dataset"}  # the KeyError: 'dataset' job
    bad = {"wrong-type": dict(good.to_dict(), level="x"), "not-a-dict": None, "unknown-key": dict(good.to_dict(), gpu=1),
           "not-its-own-run": dict(no_dataset, seed=6), "bad-preset": dict(good.to_dict(), preset="nope")}
    for seq, (job_id, config) in enumerate(bad.items(), start=-10):
        write_job(queue, job_id, config, seq)
    write_job(queue, good.hash(), no_dataset, -1)  # missing a key, but it names its own run: it runs
    queue.cache.set(JOB + "junk", "not json {")
    queue.submit(cfg(seed=7))
    store = ResultStore(store_dir)
    logs = []
    assert Worker(queue, store, runner=fake_runner(epochs=1), log=logs.append).loop(once=True) == 2
    for job_id in bad:
        job = queue.get(job_id)
        assert job["state"] == FAILED and job["error"].startswith("malformed job: ") and "\n" not in job["error"]
    assert "level" in queue.get("wrong-type")["error"] and "hashes to" in queue.get("not-its-own-run")["error"]
    assert queue.get(good.hash())["state"] == DONE and store.has(good.hash()) and len(store) == 2
    assert any("digits" in m and good.hash() in m for m in logs)


def test_a_config_that_breaks_at_run_time_fails_the_job_not_the_worker(queue, store_dir):
    queue.submit(cfg(seed=8))
    job = queue.claim("w")
    worker = Worker(queue, ResultStore(store_dir), runner=fake_runner(), worker_id="w", log=lambda m: None)
    assert worker.run_job(dict(job, config=dict(job["config"], shots=0))) == FAILED
    assert queue.get(job["id"])["state"] == FAILED and "shots" in queue.get(job["id"])["error"]


@pytest.mark.slow
def test_kill_9_mid_job_then_a_second_worker_finishes_it_once(queue, store_dir, tmp_path):
    key = queue.submit(cfg(seed=9)).job_id
    log = tmp_path / "runs.log"
    first = spawn_worker(store_dir, log, 120)
    deadline = time.time() + 60
    while not (log.exists() and log.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    assert queue.get(key)["state"] == RUNNING and queue.get(key)["pid"] == first.pid
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    t0, run_s = time.time(), 1.0
    second = spawn_worker(store_dir, log, run_s)
    assert second.wait(timeout=STALE_S + run_s + 60) == 0
    elapsed = time.time() - t0
    job = queue.get(key)
    assert job["state"] == DONE and job["pid"] == second.pid and (job["attempts"], job["lost"]) == (2, 1)
    assert elapsed < STALE_S + run_s, elapsed  # process start included
    runs = log.read_text().split()
    assert runs == [str(first.pid), key, str(second.pid), key]
    assert ResultStore(store_dir).hashes() == [key]  # stored once
