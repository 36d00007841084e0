"""Static figures and tables for a write-up, generated from a bundle (never from memory).

    python -m lthvp figures cache/mini_digits.zip --out docs/figures

PNG export uses kaleido with the system Chromium (requirements.txt); the tables are
markdown, mean ± std over seeds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lthvp.analysis import report
from lthvp.analysis.report import shots_label, shots_order
from lthvp.analysis.effects import effects
from lthvp.analysis.findings import findings_markdown
from lthvp.analysis.subpop_report import subpopulations_markdown
from lthvp.results.shots import parse as parse_shots, text as shots_text
from lthvp.results.store import flat_row, read_bundle
from lthvp.ui import plots, prompt_plots, reliability_plots
from lthvp.ui.effect_plots import forest_figure


def bundle_frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([flat_row(r) for r in records])


def pick(records: list[dict], **config) -> dict:
    """The one record whose config matches ``config`` (shots in any spelling: lthvp.results.shots)."""
    want = {k: parse_shots(v) if k == "shots" else v for k, v in config.items()}
    hits = [r for r in records if all(r["config"].get(k) == v for k, v in want.items())]
    if len(hits) != 1:
        raise ValueError(f"{len(hits)} records match {config}")
    return hits[0]


def showcase(df: pd.DataFrame) -> dict:
    """The replicate shown where a figure draws single runs (reliability panels, prompts): the
    first ticket family (none for the legacy study) and its first seed."""
    families = sorted({int(f) for f in df["family"].dropna()}) if "family" in df else []
    return {"family": families[0] if families else None, "seed": int(df["seed"].min())}


def study_figures(records: list[dict], dataset: str = "digits") -> dict[str, object]:
    """Named plotly figures of the study: curves, reliability panels, prompts across levels."""
    df = bundle_frame(records)
    df = df[df["dataset"] == dataset]
    vp_levels = sorted(df[(df["method"] == "vp") & (df["arm"] == "ticket")]["level"].unique())
    lo, hi = vp_levels[0], vp_levels[-1]
    one = showcase(df)
    full = dict(dataset=dataset, shots="full", arm="ticket", **one)
    which = (f"family {one['family']}, " if one["family"] is not None else "") + f"seed {one['seed']}"
    panels = [(f"{m.upper()} L{lv}", pick(records, method=m, level=lv, **full)) for m in ("vp", "lp") for lv in (lo, hi)]
    prompts = [(f"L{lv}", prompt_plots.decode_png(pick(records, method="vp", level=lv, **full)["prompt_png"]))
               for lv in vp_levels]
    return {
        "accuracy_vs_sparsity": plots.sparsity_figure(df, "accuracy", by="method", title=f"{dataset}: accuracy"),
        "ece_vs_sparsity": plots.sparsity_figure(df, "ece", by="method", title=f"{dataset}: ECE"),
        "reliability_dense_vs_sparse": reliability_plots.reliability_figure(panels),
        "prompts_across_levels": prompt_plots.image_grid(prompts, cols=len(prompts), scale=4,
                                                         title=f"learned VP border per level (full data, {which})"),
    }


def budget_table(records: list[dict], dataset: str = "digits") -> str:
    """Did the step budget suffice? Per shot count, the best validation accuracy a VP run reached
    over its whole budget minus the best over the first half of its steps (0 = the validation
    curve had flattened). Read from the stored curves; test data is not involved."""
    rows = []
    for r in records:
        c, curves = r["config"], r.get("curves") or []
        points = [(p.get("steps") or p.get("epoch"), p.get("val_acc")) for p in curves if p.get("val_acc") is not None]
        if c["dataset"] != dataset or c["method"] != "vp" or len(points) < 2:
            continue
        half = points[-1][0] / 2
        first = [acc for at, acc in points if at <= half]
        if first:
            rows.append({"method": c["method"], "shots": shots_text(c["shots"]),
                         "gain": 100 * (max(acc for _, acc in points) - max(first))})
    if not rows:
        return ""
    df = pd.DataFrame(rows)
    lines = ["| method | shots | runs | median gain (pts) | 90th percentile | max | runs gaining > 2 pts |",
             "|---|---|---|---|---|---|---|"]
    for (method, shots), g in sorted(df.groupby(["method", "shots"]), key=lambda kv: (kv[0][0], shots_order(
            df["shots"]).index(kv[0][1]))):
        lines.append(f"| {plots.METHOD_NAMES[method]} | {shots_label(shots)} | {len(g)} | {g['gain'].median():.1f} | "
                     f"{g['gain'].quantile(0.9):.1f} | {g['gain'].max():.1f} | {int((g['gain'] > 2).sum())} |")
    return ("### Step budget: best validation accuracy gained in the last half of the steps\n\n"
            + "\n".join(lines))


def study_tables(records: list[dict], dataset: str = "digits") -> str:
    df = bundle_frame(records)
    families = df["family"].dropna().nunique() if "family" in df else 0
    spread = ("mean ± std over ticket families; seeds averaged inside each family" if families > 1
              else "mean ± std over seeds")
    methods = [m for m in ("vp", "map", "lp") if (df["method"] == m).any()]
    random_shots = ", ".join(shots_label(s) for s in shots_order(df[df["arm"] == "random"]["shots"]))
    parts = []
    for metric, label in (("accuracy", "Test accuracy (%)"), ("ece", "ECE (%)")):
        for method in methods:
            parts.append(f"### {label}, {plots.METHOD_NAMES[method]}, {dataset} ({spread})\n\n"
                         + report.markdown_table(df, metric, method, dataset=dataset))
        parts.append(f"### {label}, random-pruning arm ({random_shots})\n\n"
                     + "\n\n".join(f"{plots.METHOD_NAMES[m]}:\n\n" + report.markdown_table(df, metric, m, arm="random", dataset=dataset)
                                   for m in methods))
    budget = budget_table(records, dataset)
    return "\n\n".join(parts + ([budget] if budget else [])) + "\n"


def write_figures(bundle: Path, out: Path, dataset: str = "digits", scale: float = 1.5) -> list[Path]:
    import kaleido

    records = [r.to_json() for r in read_bundle(bundle)]  # the figures read records as the pages do: JSON
    out.mkdir(parents=True, exist_ok=True)
    written = []
    kaleido.start_sync_server()  # one browser for all figures
    try:
        for name, fig in study_figures(records, dataset).items():
            path = out / f"{name}.png"
            fig.update_layout(width=1200 if "prompts" not in name else None)
            fig.write_image(path, scale=scale)
            written.append(path)
    finally:
        kaleido.stop_sync_server()
    tables = out / "tables.md"
    tables.write_text(study_tables(records, dataset))
    df = bundle_frame(records)
    forest = out / "effects_forest.png"
    effect_forest(df, dataset).write_image(forest, scale=scale)
    findings = out / "findings.md"
    findings.write_text(findings_markdown(df, dataset))
    effects_csv = out / "effects_accuracy.csv"
    effects(df, "accuracy", dataset).to_csv(effects_csv, index=False)
    subpopulations = out / "subpopulations.md"  # who pays for compression: per class, per test image
    subpopulations.write_text(subpopulations_markdown(records, dataset))
    return written + [tables, forest, findings, effects_csv, subpopulations]


def effect_forest(df: pd.DataFrame, dataset: str):
    """Accuracy slopes per halving of the remaining weights: VP, LP and their difference per shot count."""
    table = effects(df, "accuracy", dataset)
    rows = table[table["contrast"].isin(["slope", "vp-lp_slope"]) & table["method"].isin(["vp", "lp", "vp-lp"])]
    fig = forest_figure(rows, f"{dataset}: accuracy slope per halving of the remaining weights (95% CI)", "accuracy")
    fig.update_layout(width=1000)
    return fig


def update_readme(readme: Path, findings: str, block: str = "findings") -> bool:
    """Replace the text between the ``<!-- {block}:start/end -->`` markers (``findings``,
    ``subpopulations``); False when the README has no such markers."""
    text = readme.read_text()
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    readme.write_text(head + start + "\n" + findings + end + rest.split(end, 1)[1])
    return True
