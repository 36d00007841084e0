"""Pure figure builders: CI maths, axes, dashed baselines, reliability ECE == stored ECE."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lthvp.analysis import report
from lthvp.results.metrics import evaluate
from lthvp.ui import plots, prompt_plots, reliability_plots


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
    assert "replicates: %{customdata[4]}" in lines[0].hovertemplate  # the true replication, e.g. '3 seeds = 3 runs'
    assert lines[0].customdata[0][4] == "3 seeds = 3 runs" and "%{y:.2f}%" in lines[0].hovertemplate
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
    fig = reliability_plots.reliability_figure([(plots.record_label(r), r) for r in recs])
    for r, ece, note in zip(recs, fig.layout.meta["ece"], [a for a in fig.layout.annotations if "ECE" in a.text]):
        assert reliability_plots.panel_ece(r) == pytest.approx(r["metrics"]["ece"], abs=1e-12)
        assert ece == pytest.approx(r["metrics"]["ece"], abs=1e-12)
        assert f"ECE {100 * r['metrics']['ece']:.2f}%" in note.text
    bars = [t for t in fig.data if t.type == "bar" and t.name == "accuracy"]
    assert len(bars) == 2 and all(0 <= v <= 100 for v in bars[0].y) and max(bars[0].y) > 1  # in %
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
    code = "import sys, lthvp.ui.plots; assert 'streamlit' not in sys.modules; print('ok')"
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


def _runs_table():
    """Two families x two seeds; IMP at levels 0 and 2, random at level 2; VP and LP at 5 shots.
    accuracy = 0.5 + 0.1*family + 0.01*seed - 0.05*level (IMP) and - 0.08*level (random)."""
    rows = []
    for fam in (0, 1):
        for seed in (0, 1):
            for method in ("vp", "lp"):
                for arm, level in (("ticket", 0), ("ticket", 2), ("random", 2)):
                    slope = 0.05 if arm == "ticket" else 0.08
                    rows.append({"hash": f"{fam}{seed}{method}{arm[0]}{level}".ljust(16, "0")[:16], "dataset": "digits",
                                 "family": fam, "seed": seed, "method": method, "shots": "5", "arm": arm, "level": level,
                                 "remaining_fraction": 0.8 ** level, "preset": "mini",
                                 "accuracy": 0.5 + 0.1 * fam + 0.01 * seed - slope * level})
    return pd.DataFrame(rows)


def test_paired_difference_vs_dense_and_imp_minus_random():
    from lthvp.analysis.report import aggregate, paired_difference

    df = _runs_table()
    dense = paired_difference(df, "accuracy", "dense")
    assert len(dense) == len(df)
    by_cell = dense.groupby(["arm", "level"])["delta"]
    assert by_cell.min().to_dict() == pytest.approx(by_cell.max().to_dict())  # family and seed offsets cancel
    assert by_cell.mean().to_dict() == pytest.approx({("random", 2): -0.16, ("ticket", 0): 0.0, ("ticket", 2): -0.10})
    diff = paired_difference(df, "accuracy", "random")
    assert set(diff["arm"]) == {"imp-random"} and len(diff) == 8 and diff["delta"].to_numpy() == pytest.approx(0.06)
    agg = aggregate(diff, "delta")
    assert list(agg["n"]) == [2, 2] and agg["lo"].to_numpy() == pytest.approx(0.06)  # two families, no spread
    lonely = df[~((df["level"] == 0) & (df["seed"] == 1))]  # seed 1 lost its dense runs: its others drop out
    assert len(paired_difference(lonely, "accuracy", "dense")) == len(df) // 2
    with pytest.raises(ValueError):
        paired_difference(df, "accuracy", "absolute")


def test_sparsity_figure_deltas_wrapped_facets_and_clickable_runs():
    df = pd.concat([_runs_table().assign(shots=s) for s in ("1", "2", "5", "10", "full")])
    df["hash"] = [f"{i:016x}" for i in range(len(df))]
    fig = plots.sparsity_figure(df, "accuracy", by="method", runs=True)
    assert len(fig.layout.annotations) == 5  # five shot panels
    rows = sorted({round(a.y, 3) for a in fig.layout.annotations})
    assert len(rows) == 2 and [round(a.y, 3) for a in fig.layout.annotations].count(rows[1]) == 3  # 3 + 2
    run_traces = [t for t in fig.data if t.name.endswith(" runs")]
    assert sum(len(t.x) for t in run_traces) == len(df)
    assert {row[0] for t in run_traces for row in t.customdata} == set(df["hash"])
    from lthvp.analysis.report import paired_difference

    delta = plots.sparsity_figure(paired_difference(df, "accuracy", "dense"), "accuracy", value="delta")
    assert delta.layout.meta["value"] == "delta" and "change in" in delta.layout.yaxis.title.text
    dense_points = [y for t in delta.data if t.mode == "lines+markers" for x, y in zip(t.x, t.y) if x == 100]
    assert dense_points and all(y == pytest.approx(0) for y in dense_points)


def test_prompt_views():
    prompt = np.zeros((32, 32, 3), np.uint8)
    prompt[:4] = 120  # a near-grey border with a little structure
    prompt[:4, :16] = 136
    prompt[4:28, :4] = prompt[4:28, 28:] = prompt[28:] = 128
    same = prompt_plots.prompt_view(prompt, "as learned")
    assert np.array_equal(same, prompt)
    stretched = prompt_plots.prompt_view(prompt, "contrast-stretched")
    assert stretched[0, 0].tolist() == [255] * 3 and stretched[0, 20].tolist() == [0] * 3  # full range
    assert stretched[10:20, 10:20].max() == 0  # the image area stays black
    moved = prompt_plots.prompt_view(prompt, "|prompt - start|")
    assert moved[0, 0].tolist() == [17] * 3 and moved[0, 20].tolist() == [15] * 3 and moved[10, 0].tolist() == [1] * 3
    with pytest.raises(ValueError):
        prompt_plots.prompt_view(prompt, "inverted")


def test_reliability_gap_is_split_into_over_and_under_confidence():
    from lthvp.ui.reliability_plots import reliability_figure

    rec = make_record(3)
    fig = reliability_figure([("one", rec)])
    over = next(t for t in fig.data if t.name.startswith("over-confident"))
    under = next(t for t in fig.data if t.name.startswith("under-confident"))
    rel = rec["reliability"]
    bins = [(c - a) for c, a, n in zip(rel["confidence"], rel["accuracy"], rel["count"]) if n]
    assert len(over.y) == sum(g > 0 for g in bins) and len(under.y) == sum(g < 0 for g in bins)
    assert all(y > 0 for y in over.y) and all(y < 0 for y in under.y)
    assert over.showlegend and under.showlegend  # both colours explained even when one is empty


def test_mapping_history_labels_cells_only_while_readable():
    short = {"mapping_history": [[i % 10 for i in range(10)]] * 5, "classes": [str(i) for i in range(10)]}
    long = {**short, "mapping_history": short["mapping_history"] * 5}
    names = [f"class {i}" for i in range(10)]
    assert prompt_plots.mapping_history_figure(short, names).data[0].texttemplate == "%{text}"
    fig = prompt_plots.mapping_history_figure(long, names)
    assert fig.data[0].texttemplate is None and "%{text}" in fig.data[0].hovertemplate
    assert list(fig.layout.xaxis.tickvals) == ["epoch 1", "epoch 6", "epoch 11", "epoch 16", "epoch 21"]


def _png_size(data: bytes) -> tuple[int, int]:
    import struct

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow  # starts the system Chromium through kaleido
def test_png_export_fixed_width_and_page_figure_untouched():
    from lthvp.ui import charts

    fig = plots.sparsity_figure(pd.DataFrame(columns=["level"]), "accuracy")
    assert charts.png_missing() is None
    width, _ = _png_size(charts.png_bytes(fig))
    assert width == charts.PNG_WIDTH * charts.PNG_SCALE
    assert fig.layout.width is None  # the chart on the page still fills its column


@pytest.mark.slow  # kaleido + Chromium, the whole study's figures from the v1 fixture bundle
def test_figures_command_regenerates_pngs_tables_and_findings(tmp_path):
    from pathlib import Path

    from lthvp.ui.figures import update_readme, write_figures

    bundle = Path(__file__).parent / "fixtures" / "mini_digits_v1.zip"
    written = write_figures(bundle, tmp_path / "figures")
    names = {p.name for p in written}
    assert {"accuracy_vs_sparsity.png", "reliability_dense_vs_sparse.png", "prompts_across_levels.png",
            "effects_forest.png", "tables.md", "findings.md", "effects_accuracy.csv"} <= names
    for path in written:
        if path.suffix == ".png":
            assert _png_size(path.read_bytes())[0] > 500, path.name
    findings = (tmp_path / "figures" / "findings.md").read_text()
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- findings:start -->\nSTALE FINDINGS\n<!-- findings:end -->\noutro\n")
    assert update_readme(readme, findings)
    text = readme.read_text()
    assert "STALE FINDINGS" not in text and findings in text and text.endswith("outro\n")


def test_study_figures_with_families_show_the_first_family_and_aggregate_over_families():
    from helpers import make_record
    from lthvp.ui import figures

    recs = [make_record(seed, method=m, level=lv, family=fam, shots="full", dataset="digits")
            for fam in (0, 1) for seed in (0, 1) for m in ("vp", "map", "lp") for lv in (0, 2)]
    figs = figures.study_figures(recs)
    assert "family 0, seed 0" in figs["prompts_across_levels"].layout.title.text
    assert len(figs["prompts_across_levels"].data) == 2  # one border per VP level
    tables = figures.study_tables(recs)
    assert "mean ± std over ticket families" in tables and "mapping only" in tables


def test_curves_never_count_the_legacy_family_as_one_more_replicate():
    """A store upgraded to the v2 study also holds the v1 (legacy) runs: aggregates over families
    leave them out (as the effects do), and a legacy-only table still aggregates by seed."""
    from helpers import make_record
    from lthvp.results.record_schema import flat_row

    v2 = [make_record(s, method="lp", level=0, family=f, shots="full") for f in (0, 1) for s in (0, 1)]
    legacy = [{**make_record(s, method="lp", level=0, shots="full"),
               "metrics": {**make_record(s, method="lp")["metrics"], "accuracy": 0.01}} for s in (0, 1)]
    both = pd.DataFrame([flat_row(r) for r in v2 + legacy])
    agg = report.aggregate(both, "accuracy")
    assert len(agg) == 1 and agg["n"].iloc[0] == 2  # two families, the legacy runs left out
    assert agg["mean"].iloc[0] == pytest.approx(np.mean([r["metrics"]["accuracy"] for r in v2]))
    only_legacy = report.aggregate(both[both["family"].isna()], "accuracy")
    assert only_legacy["n"].iloc[0] == 2 and only_legacy["mean"].iloc[0] == pytest.approx(0.01)


def test_budget_table_reads_the_validation_curves():
    from helpers import make_record
    from lthvp.ui.figures import budget_table

    flat = make_record(0, method="vp", shots="full", dataset="digits")
    flat["curves"] = [{"epoch": e, "steps": 100 * e, "val_acc": a} for e, a in enumerate((0.3, 0.6, 0.6, 0.6), 1)]
    rising = make_record(1, method="vp", shots="full", dataset="digits")
    rising["curves"] = [{"epoch": e, "steps": 100 * e, "val_acc": a} for e, a in enumerate((0.3, 0.5, 0.6, 0.65), 1)]
    lp = make_record(2, method="lp", shots="full", dataset="digits")
    table = budget_table([flat, rising, lp])
    row = next(line for line in table.splitlines() if line.startswith("| VP | full data"))
    assert row == "| VP | full data | 2 | 7.5 | 13.5 | 15.0 | 1 |"  # gains 0 and 15 points (0.65 vs 0.5 at half)
    assert budget_table([lp]) == ""


def arm_rows():
    """VP at 1 shot, three seeds: IMP levels 0-2, one-shot and structured pruning at 1-2, int8 at 0-2."""
    rng = np.random.default_rng(3)
    out = []
    for arm, levels in (("ticket", (0, 1, 2)), ("oneshot", (1, 2)), ("structured", (1, 2)), ("quant8", (0, 1, 2))):
        for level in levels:
            for seed in range(3):
                out.append({"hash": f"{arm}{level}{seed}", "preset": "mini", "dataset": "digits", "method": "vp",
                            "shots": "1", "arm": arm, "level": level, "seed": seed, "family": 0,
                            "remaining_fraction": 0.8 ** level, "accuracy": 0.5 + 0.1 * rng.random(),
                            "ece": 0.1 * rng.random(), "mce": 0.2, "nll": 1.0, "brier": 0.5})
    return pd.DataFrame(out)


@pytest.mark.parametrize("by", ["shots", "method"])
def test_every_chosen_arm_is_drawn_on_the_same_axes_and_quantized_arms_as_markers(by):
    from lthvp.ui import arm_views

    df = arm_rows()
    fig = plots.sparsity_figure(df, "accuracy", by=by)
    traces = {t.name: t for t in fig.data if t.mode in ("lines+markers", "markers") and not t.name.endswith(" runs")}
    label = "1-shot" if by == "shots" else "VP"
    imp, oneshot = traces[label], traces[f"{label} (one-shot magnitude pruning)"]
    structured, int8 = traces[f"{label} (L1 filter (structured) pruning)"], traces[f"{label} (int8 weights)"]
    assert len(traces) == 4 and len({t.line.dash for t in (imp, oneshot, structured)}) == 3  # one dash per arm
    assert imp.line.dash == "solid" and oneshot.mode == structured.mode == "lines+markers"
    assert list(oneshot.x) == pytest.approx([80.0, 64.0]) and list(imp.x) == pytest.approx([100.0, 80.0, 64.0])
    agg = report.aggregate(df, "accuracy")
    mean = agg[(agg.arm == "oneshot") & (agg.level == 2)]["mean"].iloc[0]
    assert oneshot.y[1] == pytest.approx(100 * mean)  # the same aggregate as the other arms
    # int8 keeps IMP's mask: markers on IMP's x with their interval as error bars, bits in the hover
    assert int8.mode == "markers" and list(int8.x) == list(imp.x)
    assert "8 bits per weight" in int8.hovertemplate and int8.error_y.array is not None
    assert not any(t.fill == "toself" and "int8" in t.name for t in fig.data)  # no band over IMP's
    assert list(fig.layout.xaxis.ticktext) == ["L0 100.0%", "L1 80.0%", "L2 64.0%"]
    assert arm_views.arm_order(["quant4", "random", "oneshot", "ticket", "x"]) == ["ticket", "random", "oneshot",
                                                                                    "quant4", "x"]
    head = plots.headline_figure(df)
    assert {t.name for t in head.data if t.mode == "markers"} == {"VP (int8 weights)"}
