"""Pure figure builders: CI maths, axes, dashed baselines, reliability ECE == stored ECE."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lthvp import plots, prompt_plots, report
from lthvp.metrics import evaluate


def rows():
    out = []
    rng = np.random.default_rng(0)
    for method in ("vp", "lp"):
        for shots in ("1", "10"):
            for level in (0, 1, 2):
                for seed in (0, 1, 2):
                    out.append({"hash": f"{method}{shots}{level}{seed}", "preset": "mini", "dataset": "digits",
                                "method": method, "shots": shots, "arm": "ticket", "level": level, "seed": seed,
                                "remaining_fraction": 0.8 ** level, "accuracy": 0.5 + 0.1 * rng.random(),
                                "ece": 0.1 * rng.random(), "mce": 0.2, "nll": 1.0, "brier": 0.5})
    out.append({**out[-1], "hash": "rand", "arm": "random", "level": 2, "seed": 0})
    return pd.DataFrame(out)


def test_aggregate_t_interval_and_single_seed():
    df = rows()
    agg = report.aggregate(df, "accuracy")
    g = agg[(agg.method == "vp") & (agg.shots == "1") & (agg.level == 1) & (agg.arm == "ticket")].iloc[0]
    vals = df[(df.method == "vp") & (df.shots == "1") & (df.level == 1)]["accuracy"].to_numpy()
    lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=vals.mean(), scale=stats.sem(vals))
    assert g["n"] == 3 and g["mean"] == pytest.approx(vals.mean())
    assert g["lo"] == pytest.approx(lo) and g["hi"] == pytest.approx(hi)
    single = agg[agg.arm == "random"].iloc[0]
    assert single["n"] == 1 and np.isnan(single["lo"]) and np.isnan(single["hi"])


@pytest.mark.parametrize("by", ["shots", "method"])
def test_sparsity_figure_axes_bands_and_dashed_baseline(by):
    df = rows()
    fig = plots.sparsity_figure(df, "ece", by=by)
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.ticktext) == ["L0 100.0%", "L1 80.0%", "L2 64.0%"]
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 4  # every ticket line has 3 seeds; the 1-seed random arm has none
    dashed = [t for t in lines if t.line.dash == "dash"]
    assert len(dashed) == 1 and "random" in dashed[0].name
    assert all(t.line.dash == "solid" for t in lines if t not in dashed)
    assert "runs (seeds)" in lines[0].hovertemplate
    # ECE plotted in percent
    y = max(max(t.y) for t in lines)
    assert 1 < y <= 10
    panels = df["method"].nunique() if by == "shots" else df["shots"].nunique()
    assert len(fig.layout.annotations) == panels  # one title per panel


def test_sparsity_figure_empty():
    fig = plots.sparsity_figure(rows().iloc[0:0], "accuracy")
    assert len(fig.data) == 0


def test_headline_and_summary():
    df = rows()
    fig = plots.headline_figure(df)
    assert fig.layout.meta["dataset"] == "digits" and {t.name for t in fig.data if t.showlegend} >= {"VP", "LP"}
    s = plots.summary(df)
    assert set(s["method"]) == {"VP", "LP"} and s["runs"].sum() == len(df)
    assert plots.shots_order(["full", "10", "2", "1"]) == ["1", "2", "10", "full"]


def make_record(seed=0, n=300, k=10):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, k, n)
    m = evaluate(probs, labels)
    return {"hash": f"h{seed}", "config": {"method": "vp", "level": 2, "shots": "1", "seed": seed, "arm": "ticket"},
            "metrics": {key: m[key] for key in ("accuracy", "ece", "mce", "nll", "brier")},
            "reliability": json.loads(json.dumps(m["reliability"])), "remaining_fraction": 0.64}


def test_reliability_panel_ece_equals_stored():
    recs = [make_record(0), make_record(1)]
    fig = plots.reliability_figure([(plots.record_label(r), r) for r in recs])
    for r, ece, note in zip(recs, fig.layout.meta["ece"], [a for a in fig.layout.annotations if "ECE" in a.text]):
        assert plots.panel_ece(r) == pytest.approx(r["metrics"]["ece"], abs=1e-12)
        assert ece == pytest.approx(r["metrics"]["ece"], abs=1e-12)
        assert f"ECE {100 * r['metrics']['ece']:.2f}%" in note.text
    bars = [t for t in fig.data if t.type == "bar" and t.name == "accuracy"]
    assert len(bars) == 2 and all(0 <= v <= 1 for v in bars[0].y)
    assert fig.layout.barmode == "overlay"


def test_prompt_helpers():
    prompt = np.full((32, 32, 3), 200, np.uint8)
    prompt[4:28, 4:28] = 0
    imgs = np.zeros((3, 8, 8, 3), np.uint8) + 50
    out = prompt_plots.apply_prompt(prompt, imgs, 24)
    assert len(out) == 3 and out[0].shape == (32, 32, 3)
    assert out[0][0, 0, 0] == 200 and out[0][16, 16, 0] == 50
    fig = prompt_plots.image_grid([(f"p{i}", o) for i, o in enumerate(out)], cols=2)
    assert len(fig.data) == 3 and fig.data[0].type == "image"
    rec = {"config": {"level": 1}, "remaining_fraction": 0.8, "mapping": [2, 0], "classes": ["a", "b"],
           "mapping_history": [[0, 1], [2, 0]]}
    t = prompt_plots.mapping_table([rec], ["s0", "s1", "s2"])
    assert t.loc["a"].iloc[0] == "s2" and t.loc["b"].iloc[0] == "s0"
    fig = prompt_plots.mapping_history_figure(rec, ["s0", "s1", "s2"])
    assert "2 reassignments" in fig.layout.title.text


def test_plots_does_not_import_streamlit():
    code = "import sys, lthvp.plots; assert 'streamlit' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_aggregate_takes_the_family_as_unit():
    """With several ticket families, seeds are averaged inside each family first and n counts
    families; the interval is the t-interval over the family means."""
    df = rows()
    df = pd.concat([df.assign(family=0), df.assign(family=1, accuracy=df["accuracy"] + 0.1)], ignore_index=True)
    cell = (df.method == "vp") & (df.shots == "1") & (df.level == 1) & (df.arm == "ticket")
    fam_means = df[cell].groupby("family")["accuracy"].mean().to_numpy()
    g = report.aggregate(df, "accuracy")
    g = g[(g.method == "vp") & (g.shots == "1") & (g.level == 1) & (g.arm == "ticket")].iloc[0]
    lo, hi = stats.t.interval(0.95, 1, loc=fam_means.mean(), scale=stats.sem(fam_means))
    assert g["n"] == 2 and g["mean"] == pytest.approx(fam_means.mean())
    assert g["lo"] == pytest.approx(max(lo, 0.0)) and g["hi"] == pytest.approx(min(hi, 1.0))
