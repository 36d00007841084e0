"""One unit system (lthvp.ui.units): the Effects table and CSV in points, Run details in % with
class names; the queue in the protocol's unit (steps), its per-job log and the ETA from measured
progress (lthvp.compute.job_log, lthvp.ui.job_status); the Run page's budget controls."""

import io

import numpy as np
import pandas as pd
import pytest

from lthvp.analysis.effects import effects
from lthvp.compute import job_log
from lthvp.compute.jobs import JobQueue
from lthvp.results.config import RunConfig
from lthvp.results.presets import PRESETS
from lthvp.ui import job_status, run_budget, units
from lthvp.ui.dashboard import describe_progress, fraction_done


def results_table(families=3, seeds=4) -> pd.DataFrame:
    """A balanced grid of runs whose accuracy falls with the level (fractions, as the records keep them)."""
    rng = np.random.default_rng(0)
    rows = []
    for f in range(families):
        for s in range(seeds):
            for method in ("vp", "lp"):
                for level in (0, 2, 4):
                    for shots in ("1", "full"):
                        acc = 0.6 - 0.02 * level * (method == "vp") + rng.normal(0, 0.01)
                        rows.append({"hash": f"{len(rows):016x}", "family": f, "seed": s, "method": method,
                                     "arm": "ticket", "level": level, "shots": shots, "dataset": "digits",
                                     "preset": "mini", "accuracy": acc, "ece": 0.05 + 0.01 * level + rng.normal(0, .005),
                                     "remaining_fraction": 0.8 ** level, "steps": None, "epochs": 5,
                                     "val_per_class": None, "lr": 0.1, "batch_size": 32, "mapping": "ilm",
                                     "image_size": 24, "lp_input": "full"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table():
    return effects(results_table(), "accuracy", "digits")


def test_effects_table_and_csv_are_in_points(table):
    shown = units.effects_in_units(table, "accuracy")
    for col in ("estimate", "ci_low", "ci_high", "mde"):
        assert f"{col} (pts)" in shown and col not in shown
        assert np.allclose(shown[f"{col} (pts)"], 100 * table[col], equal_nan=True)
    assert np.allclose(shown["p"], table["p"], equal_nan=True)  # p values are not scaled
    csv = pd.read_csv(io.StringIO(shown.to_csv(index=False)))
    slope = csv[(csv["contrast"] == "slope") & (csv["method"] == "vp")]
    assert (slope["estimate (pts)"].abs() > 1).all()  # ~ -4 points per halving, not -0.04
    per_level = slope["per_level (pts)"].iloc[0]
    assert per_level.startswith("L2 -") and abs(float(per_level.split(",")[0].split()[1])) > 1


def test_nll_differences_stay_in_nats():
    df = results_table().assign(nll=lambda d: 1 + d["level"] * 0.1)
    shown = units.effects_in_units(effects(df, "nll", "digits"), "nll")
    assert "estimate (nats)" in shown and units.difference_unit("brier") == "Brier"


def test_run_details_per_class_and_mapping_by_name():
    rec = {"config": {"preset": "mini"}, "classes": ["zero", "one", "two"], "per_class_accuracy": [0.5, 0.25, 1.0],
           "mapping": [9, 5, 0]}
    per_class = units.per_class_table(rec)
    assert per_class["class"].tolist() == ["zero", "one", "two"]
    assert per_class["accuracy (%)"].tolist() == [50.0, 25.0, 100.0]
    mapping = units.mapping_frame(rec)
    assert mapping["source class"].tolist() == ["Ankle boot (9)", "Sandal (5)", "T-shirt/top (0)"]
    assert units.mapping_frame({**rec, "config": {"preset": "paper"}})["source class"].tolist() == ["9", "5", "0"]
    assert units.budget_text({"steps": 1000, "epochs": None}) == "1000 steps"


def test_progress_reads_in_steps_for_a_step_budget():
    vp = {"state": "running", "progress": {"epoch": 8, "epochs": 50, "steps": 128, "val_acc": 0.5, "train_loss": 1.0}}
    assert describe_progress(vp).startswith("step 128/800 (round 8/50)")
    assert fraction_done(vp) == pytest.approx(8 / 50)
    lp = {"state": "running", "progress": {"epoch": 3, "epochs": 20}}
    assert describe_progress(lp) == "epoch 3/20"


def test_job_log_is_bounded_and_the_eta_follows_the_measured_rate(tmp_path):
    queue = JobQueue(tmp_path / "jobs")
    sub = queue.submit(RunConfig(dataset="digits", method="lp", level=0, shots=1, seed=0, epochs=10), user="t")
    job = queue.claim("w1")
    for epoch in range(1, 4):
        queue.progress(job["id"], "w1", {"epoch": epoch, "epochs": 10, "val_acc": 0.5})
    queue.progress(job["id"], "someone-else", {"epoch": 9, "epochs": 10})  # not its worker: not logged
    lines = job_log.lines(queue, sub.job_id)
    assert [e["text"] for e in lines] == ["epoch 1/10 · val acc 50.0%", "epoch 2/10 · val acc 50.0%",
                                          "epoch 3/10 · val acc 50.0%"]
    queue.finish(job["id"], "w1", "failed", "ValueError: x")
    assert job_log.lines(queue, sub.job_id)[-1]["text"] == "failed (worker w1): ValueError: x"
    for i in range(job_log.MAX_LINES + 20):
        job_log.append(queue, "other", f"line {i}")
    kept = job_log.lines(queue, "other")
    assert len(kept) == job_log.MAX_LINES and kept[-1]["text"] == f"line {job_log.MAX_LINES + 19}"
    # 10% per 10 s measured between the first and the last progress: 70% left -> 70 s, minus 5 s since
    running = {"state": "running", "started_at": 10.0}
    log = [{"t": 100.0, "text": "", "fraction": 0.1}, {"t": 120.0, "text": "", "fraction": 0.3}]
    assert job_status.eta_seconds(running, log, now=125.0) == pytest.approx(65.0)
    assert job_status.eta_seconds(running, log[:1], now=100.0) == pytest.approx(810.0)  # rate since it started
    assert job_status.eta_seconds({"state": "queued"}, log) is None
    assert job_status.duration_text(65) == "about 1 min 05 s left"


def test_budget_controls_are_labelled_by_the_protocol():
    mini = PRESETS["mini"]
    labels = run_budget.budget_labels(mini, family=0)
    assert labels["vp"][:2] == ("steps", "VP steps (0 = preset: 1,000)")
    assert run_budget.budget_labels(mini, family=None)["vp"][0] == "epochs"  # the legacy family counts epochs
    assert labels["lp"][1] == "LP epochs (0 = preset: 60)" and labels["lp"][2] == "r_epochs"
    configs, errors = run_budget.grid([0], ["vp", "lp", "map"], ["1"], [0], {"vp": {"steps": 300}, "lp": {"epochs": 2}},
                                      preset="mini", family=0, dataset="digits", arm="ticket")
    by_method = {c.method: c for c in configs}
    assert not errors and by_method["vp"].steps == 300 and by_method["lp"].epochs == 2
    assert by_method["map"].steps is None and by_method["map"].epochs is None
