"""One execution path: plan (resolve and hash once, skip stored) -> queue (a claim takes a cell's
seeds as one group) -> executor (in-process worker, sweep = submit and drain, Dask), each run
stored once; grouped jobs keep at-least-once (kill -9 mid-group: requeued, stored once)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_jobs import fake_record

from lthvp.compute.claims import claim_group
from lthvp.compute.executor import GroupProgress, batches, cell_key, pending, put_once, resolve_all
from lthvp.compute.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobCancelled, JobQueue
from lthvp.compute.sweep import cancel_unstarted, drain_local, shard, submit
from lthvp.compute.worker import Worker
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve
from lthvp.results.store import ResultStore

REPO = Path(__file__).resolve().parent.parent


def vp(seed, level=0, shots=5, family=0, **kw):
    return RunConfig(dataset="digits", method="vp", family=family, level=level, shots=shots, seed=seed, **kw)


def lp(seed, level=0):
    return RunConfig(dataset="digits", method="lp", family=0, level=level, shots=5, seed=seed)


def key(cfg):
    return resolve(cfg).hash()


@pytest.fixture
def store_dir(tmp_path):
    ResultStore(tmp_path / "store")
    return tmp_path / "store"


@pytest.fixture
def queue(store_dir):
    return JobQueue.for_store(store_dir)


class Recorder:
    """An executor stand-in: records each batch it is given, reports progress for every run,
    returns the runs' records (``cancel``: a job id to cancel, as its submitter would, mid-run)."""

    def __init__(self, queue=None, cancel=None, rounds=3):
        self.batches, self.queue, self.cancel, self.rounds = [], queue, cancel, rounds

    def __call__(self, configs, progress):
        self.batches.append([c.hash() for c in configs])
        for r in range(1, self.rounds + 1):
            for c, p in zip(configs, progress):
                if r == 2 and c.hash() == self.cancel:
                    self.queue.cancel(self.cancel, user="bob")
                p({"epoch": r, "epochs": self.rounds, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5,
                   "val_nll": 1.0})
        return [fake_record(c) for c in configs]


def test_plan_resolves_once_dedupes_and_skips_stored(store_dir):
    store = ResultStore(store_dir)
    a, b = lp(0), lp(1)
    store.put(fake_record(a))
    resolved = resolve_all([a, b, b.replace(lr=resolve(b).lr)])  # the explicit default is the same run
    assert list(resolved) == [key(a), key(b)] and resolved[key(b)] == resolve(b)
    assert list(pending(resolved, store)) == [key(b)]


def test_cells_group_the_seeds_of_one_family_level_and_arm():
    cfgs = [resolve(c) for c in (vp(0), vp(1), vp(0, level=2), vp(0, family=1), lp(0), vp(0, shots="full"))]
    keys = [cell_key(c) for c in cfgs]
    assert keys[0] == keys[1] and len({keys[0], keys[2], keys[3]}) == 3
    assert keys[4] is None and keys[5] is None  # LP and full data train alone
    assert batches([cfgs[0], cfgs[4], cfgs[1], cfgs[2]], max_group=8) == [[cfgs[0], cfgs[1]], [cfgs[4]], [cfgs[2]]]


def test_put_once_checks_and_never_writes_twice(store_dir):
    store = ResultStore(store_dir)
    rec = fake_record(lp(0))
    assert put_once(store, rec["hash"], rec) == ("stored", None)
    assert put_once(store, rec["hash"], rec) == ("present", None) and store.version == 1
    status, why = put_once(store, key(lp(1)), rec)
    assert status == "not stored" and why.startswith("HashMismatch") and not store.has(key(lp(1)))
    assert put_once(store, key(lp(2)), None)[0] == "not stored"
    bad = dict(fake_record(lp(3)), metrics={"accuracy": float("nan")})
    status, why = put_once(store, bad["hash"], bad)
    assert status == "not stored" and why.startswith("not stored: ") and "\n" not in why


def test_group_progress_drops_a_run_and_stops_only_when_all_are_dropped():
    alive = {0: True, 1: True}
    group = GroupProgress(["a", "b"], lambda i, p: alive[i])
    first, second = group.callbacks()
    first({}), second({})
    alive[0] = False
    first({})  # dropped: the group goes on
    assert group.dropped == {0}
    alive[1] = False
    with pytest.raises(JobCancelled):
        second({})


def test_a_claim_takes_a_cells_queued_seeds_together_oldest_first(queue):
    order = [vp(0), lp(0), vp(0, level=2), vp(1), vp(2), vp(3), vp(1, level=2)]
    for c in order:
        queue.submit(c)
    first = claim_group(queue, "w", max_group=3)
    assert [j["id"] for j in first] == [key(vp(0)), key(vp(1)), key(vp(2))]
    assert all(j["state"] == RUNNING and j["worker"] == "w" and j["attempts"] == 1 for j in first)
    assert [j["id"] for j in claim_group(queue, "w", max_group=3)] == [key(lp(0))]  # LP runs alone
    assert [j["id"] for j in claim_group(queue, "w", max_group=3)] == [key(vp(0, level=2)), key(vp(1, level=2))]
    assert [j["id"] for j in claim_group(queue, "w", max_group=3, only={key(lp(5))})] == []
    assert [j["id"] for j in claim_group(queue, "w", max_group=3)] == [key(vp(3))]
    assert queue.claim("w") is None
    with pytest.raises(ValueError, match="max_group"):
        claim_group(queue, "w", max_group=0)


def test_the_worker_runs_one_cells_jobs_as_one_group(queue, store_dir):
    store = ResultStore(store_dir)
    cell, other = [vp(s) for s in range(3)], [lp(0), vp(0, level=1)]
    for c in [cell[0], other[0], cell[1], other[1], cell[2]]:
        queue.submit(c, user="alice")
    execute = Recorder()
    assert Worker(queue, store, execute=execute, log=lambda m: None).loop(once=True) == 5
    assert execute.batches == [[key(c) for c in cell], [key(other[0])], [key(other[1])]]
    assert all(queue.get(key(c))["state"] == DONE for c in cell + other)
    assert sorted(store.hashes()) == sorted(key(c) for c in cell + other) and store.version == 5
    assert queue.get(key(cell[2]))["progress"]["epoch"] == 3  # each member's progress reaches its job


def test_a_cancelled_member_of_a_group_is_not_stored_and_the_rest_are(queue, store_dir):
    store = ResultStore(store_dir)
    cell = [vp(s) for s in range(3)]
    for c in cell:
        queue.submit(c)
    execute = Recorder(queue, cancel=key(cell[1]))
    Worker(queue, store, execute=execute, log=lambda m: None).loop(once=True)
    assert len(execute.batches) == 1
    states = [queue.get(key(c))["state"] for c in cell]
    assert states == [DONE, CANCELLED, DONE] and queue.get(key(cell[1]))["cancelled_by"] == "bob"
    assert not store.has(key(cell[1])) and len(store) == 2


def test_a_group_that_raises_fails_each_job_and_a_stored_member_is_not_rerun(queue, store_dir):
    store = ResultStore(store_dir)
    cell = [vp(s) for s in range(3)]
    for c in cell:
        queue.submit(c)
    store.put(fake_record(cell[0]))  # stored by someone else after it was queued

    def boom(configs, progress):
        assert [c.hash() for c in configs] == [key(cell[1]), key(cell[2])]
        raise RuntimeError("out of memory")

    Worker(queue, store, execute=boom, log=lambda m: None).loop(once=True)
    jobs = [queue.get(key(c)) for c in cell]
    assert [j["state"] for j in jobs] == [DONE, FAILED, FAILED] and "out of memory" in jobs[1]["error"]


GROUP_WORKER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from test_jobs import fake_record
    from lthvp.compute.jobs import JobQueue
    from lthvp.compute.worker import Worker
    from lthvp.results.store import ResultStore
    store_dir, log, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    def execute(configs, progress):
        with open(log, "a") as f:
            f.write(f"{{os.getpid()}} {{','.join(c.hash() for c in configs)}}\\n")
        for p in progress:
            p({{"epoch": 1, "epochs": 2, "train_loss": 0.0, "train_acc": 1.0, "val_acc": 1.0, "val_nll": 0.0}})
        time.sleep(delay)
        return [fake_record(c) for c in configs]
    Worker(JobQueue.for_store(store_dir), ResultStore(store_dir), execute=execute,
           log=lambda m: None).loop(once=True, poll=0.01)
""")


def spawn_group_worker(store_dir, log, delay):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = GROUP_WORKER.format(tests=str(REPO / "tests"))
    return subprocess.Popen([sys.executable, "-c", code, str(store_dir), str(log), str(delay)], env=env,
                            start_new_session=True)


@pytest.mark.slow
def test_a_grouped_job_killed_mid_way_is_requeued_and_stored_once(queue, store_dir, tmp_path):
    cell = [key(vp(s)) for s in range(3)]
    for s in range(3):
        queue.submit(vp(s))
    log = tmp_path / "runs.log"
    first = spawn_group_worker(store_dir, log, 120)
    deadline = time.time() + 60
    while not (log.exists() and log.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    assert [queue.get(k)["worker"] is not None and queue.get(k)["pid"] for k in cell] == [first.pid] * 3
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    second = spawn_group_worker(store_dir, log, 0.5)
    assert second.wait(timeout=120) == 0
    runs = [line.split() for line in log.read_text().splitlines()]
    assert runs == [[str(first.pid), ",".join(cell)], [str(second.pid), ",".join(cell)]]  # the group, twice
    for k in cell:
        job = queue.get(k)
        assert (job["state"], job["pid"], job["attempts"], job["lost"]) == (DONE, second.pid, 2, 1)
    store = ResultStore(store_dir)
    assert sorted(store.hashes()) == sorted(cell) and store.version == 3  # each stored once


def test_sweep_submits_then_drains_only_its_own_jobs(queue, store_dir):
    store = ResultStore(store_dir)
    queue.submit(lp(9), user="alice")  # someone else's job: the sweep leaves it alone
    store.put(fake_record(lp(0)))
    sub = submit([lp(0), vp(0), vp(1), vp(1)], store, queue, user="sweeper")
    assert (sub.ids, sub.fresh, sub.skipped) == ([key(vp(0)), key(vp(1))], [key(vp(0)), key(vp(1))], 2)
    execute, seen = Recorder(), []
    out = drain_local(sub, store, queue, seen.append, poll=0.01, execute=execute)
    assert (out.done, out.skipped, out.failed) == (2, 2, [])
    assert execute.batches == [[key(vp(0)), key(vp(1))]] and len(seen) == 1
    assert queue.get(key(lp(9)))["state"] == QUEUED and not store.has(key(lp(9)))
    again = submit([lp(0), vp(0), vp(1)], store, queue)
    assert (again.ids, again.skipped) == ([], 3)


def test_sweep_reruns_a_done_job_whose_result_was_deleted_and_cancels_only_its_own_waiting_jobs(queue, store_dir):
    store = ResultStore(store_dir)
    first = submit([lp(0)], store, queue, user="sweeper")
    drain_local(first, store, queue, poll=0.01, execute=Recorder())
    store.delete([key(lp(0))])
    assert not store.has(key(lp(0))) and queue.get(key(lp(0)))["state"] == DONE
    sub = submit([lp(0), lp(1), lp(2)], store, queue, user="sweeper")
    assert sub.ids == sub.fresh == [key(lp(0)), key(lp(1)), key(lp(2))]
    queue.submit(lp(2), user="alice")  # alice asks for one of them too
    assert cancel_unstarted(queue, sub) == [key(lp(0)), key(lp(1))]
    assert queue.get(key(lp(2)))["state"] == QUEUED and queue.get(key(lp(1)))["state"] == CANCELLED


def test_shards_keep_a_cells_seeds_together():
    configs = [vp(s, level=lv) for lv in (0, 2, 4) for s in range(3)] + [lp(s) for s in range(4)]
    parts = [shard(configs, k, 2) for k in range(2)]
    assert sorted(map(repr, parts[0] + parts[1])) == sorted(map(repr, configs))
    for part in parts:
        levels = [c.level for c in part if c.method == "vp"]
        assert all(levels.count(lv) in (0, 3) for lv in (0, 2, 4))  # a cell's three seeds in one shard
    assert [len(p) for p in parts] == [6 + 2, 3 + 2]


@pytest.mark.slow
def test_cli_sweep_trains_a_cells_seeds_together_through_the_queue(tmp_path, capsys):
    """`python -m lthvp sweep`: the two seeds of one VP cell are queued, claimed as one group and
    trained together; their records equal separate runs' (hash, mapping history, steps, accuracy)."""
    from lthvp.commands.cli import main
    from lthvp.compute.runner import run

    args = ["sweep", "--family", "legacy", "--method", "vp", "--level", "0", "--shots", "2", "--seed", "0", "1",
            "--steps", "12", "--batch-size", "8", "--store", str(tmp_path / "s")]
    assert main(args) == 0, capsys.readouterr().err
    store, queue = ResultStore(tmp_path / "s"), JobQueue.for_store(tmp_path / "s")
    cfgs = [RunConfig(family=None, method="vp", shots=2, seed=s, steps=12, batch_size=8) for s in (0, 1)]
    for c in cfgs:
        grouped, alone = store.get(key(c)), run(c).record
        assert grouped["timings"]["group_size"] == 2 and queue.get(key(c))["state"] == DONE
        assert grouped["mapping_history"] == alone["mapping_history"] and grouped["steps"] == alone["steps"]
        assert grouped["metrics"]["accuracy"] == alone["metrics"]["accuracy"]
    version = store.version
    assert main(args) == 0 and ResultStore(tmp_path / "s").version == version  # nothing new to run
    assert "0 to run" in capsys.readouterr().err


@pytest.mark.slow
def test_the_cluster_the_code_starts_listens_on_loopback_only():
    import psutil

    from lthvp.compute.dask_sweep import LOOPBACK, dask_client

    with dask_client("local:2") as (client, _):
        assert client.scheduler.address.startswith(f"tcp://{LOOPBACK}:")
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 2 and all(a.startswith(f"tcp://{LOOPBACK}:") for a in workers)
        listening = set()
        for proc in [psutil.Process()] + psutil.Process().children(recursive=True):
            try:
                listening |= {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    assert listening and listening <= {LOOPBACK}, listening


def test_every_dask_command_in_the_docs_binds_loopback_unless_it_names_an_interface():
    """Each `dask scheduler` / `dask worker` command the docs give says where it listens: `--host`
    127.0.0.1 (directly, or through a variable the doc sets to it) and dashboards on 127.0.0.1;
    no `dask ssh` command (its scheduler listens on every interface)."""
    import re

    commands = 0
    for doc in ("docs/SCALE.md", "docs/DISTRIBUTED.md", "README.md"):
        text = (REPO / doc).read_text()
        blocks = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S))
        variables = dict(re.findall(r"^\s*(\w+)=(\S+)", blocks, flags=re.M))
        for line in blocks.splitlines():
            if not re.search(r"\bdask (scheduler|worker|ssh)\b", line):
                continue
            commands += 1
            assert "dask ssh" not in line, (doc, line)
            host = re.search(r"--host (\S+)", line)
            assert host, (doc, line)
            value = host.group(1)
            assert variables.get(value.lstrip("$"), value) == "127.0.0.1", (doc, line)
            assert re.search(r"--dashboard-address 127\.0\.0\.1:\d+", line) or line.rstrip().endswith("\\"), (doc, line)
    assert commands >= 5
