"""The Run page's arithmetic, without a page: the requested grid, and how it splits into stored,
already queued (shared) and to-train cells; the queue panel's text helpers."""

from helpers import make_record
from lthvp.compute.jobs import JobQueue
from lthvp.compute.run_plan import grid, plan
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve
from lthvp.ui import queue_panel


def test_grid_builds_every_combination_and_names_each_refusal_once():
    configs, errors = grid([0, 2], ["lp", "vp"], [1, "full"], [0, 1], dataset="digits", arm="ticket")
    assert len(configs) == 2 * 2 * 2 * 2 and not errors
    assert {(c.level, c.method, c.shots, c.seed) for c in configs} >= {(2, "vp", "full", 1), (0, "lp", 1, 0)}
    configs, errors = grid([0, 1], ["lp"], [1], [0, 1], dataset="digits", arm="random")  # no random arm at L0
    assert [c.level for c in configs] == [1, 1] and len(errors) == 1 and "random" in errors[0]


def test_plan_splits_stored_queued_and_to_train(store, tmp_path):
    configs = [RunConfig(dataset="digits", method="lp", level=lv, shots=5, seed=0) for lv in (0, 1, 2)]
    store.put(make_record(0, method="lp", level=0, dataset="digits"))  # L0 stored
    queue = JobQueue.for_store(store.directory)
    queue.submit(configs[1], user="ada")  # L1 queued by someone else
    p = plan(configs, store, queue, ["a refused cell"])
    keys = [resolve(c).hash() for c in configs]
    assert (p.cached, p.pending, p.todo) == ([keys[0]], [keys[1]], [keys[2]])
    assert p.to_submit() == [configs[2]] and p.errors == ["a refused cell"]
    queue.cancel(keys[1])  # a cancelled job is not pending: asking again trains it
    assert plan(configs, store, queue).todo == keys[1:]


def test_queue_panel_text():
    cfg = RunConfig(dataset="digits", method="map", level=3, shots="full", seed=2, arm="random", family=1).to_dict()
    line = queue_panel.describe(cfg)
    assert line.startswith("mapping only · digits · L3 random · full data · seed 2") and line.endswith("family 1")
    assert queue_panel.ago(100.0, now=130.0) == "30 s ago" and queue_panel.ago(0, now=5.0) == ""
    assert queue_panel.ago(0.5, now=0.5 + 3 * 3600) == "3.0 h ago"
    text = queue_panel.workers_line([{"id": "w1", "job": "abc"}, {"id": "w2", "gpu": "0"}], 4, True)
    assert text == "2 live worker(s): `w1` running `abc`, `w2` (GPU 0) idle · 4 job(s) · refreshing every 2 s"
    assert queue_panel.workers_line([], 0, False) == "no live worker · 0 job(s)"
