"""Pure figure builders: results table / records -> plotly Figure. No Streamlit in here.

Conventions: x = remaining prunable weights in % on a log axis, one tick per IMP level labelled
``L3 51.2%``; the mean and band of AGGREGATE_NOTE (the family is the unit when there are several); each
arm has its own dash (random dashed) and quantized arms are markers at their IMP level
(lthvp.ui.arm_views). Reliability diagrams are drawn from the stored bin table, and the ECE printed
on a panel is computed from that same table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lthvp.analysis.replicates import with_replication
from lthvp.analysis.report import aggregate, shots_label, shots_order  # noqa: F401  (pages use plots.shots_order)
from lthvp.ui import arm_views

METRICS = {  # name -> (label, shown in percent, lower is better)
    "accuracy": ("Accuracy", True, False),
    "ece": ("ECE", True, True),
    "mce": ("MCE", True, True),
    "nll": ("NLL", False, True),
    "brier": ("Brier score", False, True),
}
# What every aggregated curve draws (report.aggregate): the captions under the charts say it with these words.
AGGREGATE_NOTE = ("Mean over seeds (over families when there are several: the family is the unit); "
                  "band = 95% t-interval (none with one replicate)")
UNEQUAL = dict(symbol="circle-open", size=17, color="#e6a700")  # the ring around a point whose cell is unbalanced
ADDED = dict(symbol="star", size=10)  # a run added after its study (not one of its planned runs)
METHOD_NAMES = {"vp": "VP", "map": "mapping only", "lp": "LP", "vp-lp": "VP - LP", "vp-map": "VP - mapping only"}
METHOD_COLORS = {"vp": "#1f77b4", "map": "#7f7f7f", "lp": "#d62728", "vp-lp": "#9467bd", "vp-map": "#2ca02c"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


# --- tables ------------------------------------------------------------------------------------
def level_ticks(df: pd.DataFrame) -> tuple[list[float], list[str]]:
    """Tick positions (remaining %) and labels ('L3 51.2%') for every level in the table."""
    if df.empty:
        return [], []
    by_level = df.groupby("level")["remaining_fraction"].mean().sort_index()
    vals = [100 * float(v) for v in by_level.to_numpy()]
    return vals, [f"L{int(lv)} {v:.1f}%" for lv, v in zip(by_level.index, vals)]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """What the store holds, one row per (preset, dataset, method, arm): levels, shots, seeds, runs."""
    if df.empty:
        return pd.DataFrame(columns=["preset", "dataset", "method", "arm", "levels", "shots", "seeds", "runs"])
    rows = []
    for (preset, dataset, method, arm), part in df.groupby(["preset", "dataset", "method", "arm"]):
        rows.append({"preset": preset, "dataset": dataset, "method": METHOD_NAMES.get(method, method), "arm": arm,
                     "levels": ", ".join(str(v) for v in sorted(part["level"].unique())),
                     "shots": ", ".join(shots_order(part["shots"].unique())),
                     "seeds": ", ".join(str(v) for v in sorted(part["seed"].unique())), "runs": len(part)})
    return pd.DataFrame(rows)


# --- sparsity curves ----------------------------------------------------------------------------
def _scale(metric: str) -> float:
    return 100.0 if METRICS.get(metric, ("", False, False))[1] else 1.0


def _axis_title(metric: str, delta: bool = False) -> str:
    """'Accuracy (%) ↑'; a difference of a percent metric is in points: 'change in Accuracy (points) ↑'."""
    label, pct, lower = METRICS.get(metric, (metric, False, False))
    unit = (" (points)" if delta else " (%)") if pct else ""
    return f"{'change in ' if delta else ''}{label}{unit} {'↓' if lower else '↑'}"


def unit(metric: str, delta: bool = False) -> str:
    """The unit a value of ``metric`` is shown in: '%' (accuracy, ECE, MCE), ' pts' for their
    differences, '' for NLL and Brier."""
    return (" pts" if delta else "%") if METRICS.get(metric, ("", False, False))[1] else ""


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _add_curve(fig, part: pd.DataFrame, name: str, color: str, metric: str, row: int, col: int,
               legendgroup: str, showlegend: bool, arm: str = "ticket", delta: bool = False) -> None:
    """One arm's mean with its 95% band; a marker-only arm (quantized) gets error bars instead.
    The hover gives the true replication; a point whose cell is unbalanced is ringed (UNEQUAL)."""
    part = part.sort_values("remaining", ascending=False)
    s = _scale(metric)
    x = (100 * part["remaining"]).tolist()
    y = (s * part["mean"]).tolist()
    style = arm_views.trace_style(arm)
    band = part.dropna(subset=["lo", "hi"])
    markers_only = style["mode"] == "markers"
    if len(band) and not markers_only:
        bx = (100 * band["remaining"]).tolist()
        fig.add_trace(go.Scatter(x=bx + bx[::-1], y=(s * band["hi"]).tolist() + (s * band["lo"]).tolist()[::-1],
                                 mode="lines", fill="toself", fillcolor=_rgba(color, 0.15), line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, legendgroup=legendgroup,
                                 name=f"{name} 95% CI"), row=row, col=col)
    if "replication" not in part:
        part = part.assign(replication=part["n"].astype(str) + " runs", balanced=True)
    custom = np.stack([part["level"].to_numpy(), part["n"].to_numpy(), (s * part["lo"]).to_numpy(),
                       (s * part["hi"]).to_numpy(), part["replication"].to_numpy()], axis=1)
    u, f = unit(metric, delta), ".2f" if s == 100 else ".3f"
    errors = dict(type="data", symmetric=False, array=(s * (part["hi"] - part["mean"])).fillna(0).tolist(),
                  arrayminus=(s * (part["mean"] - part["lo"])).fillna(0).tolist(), thickness=1.5) if markers_only else None
    fig.add_trace(go.Scatter(
        x=x, y=y, mode=style["mode"], name=name, legendgroup=legendgroup, showlegend=showlegend,
        line=dict(color=color, dash=style["dash"], width=2),
        marker=dict(size=style["size"], symbol=style["symbol"], line=dict(width=2, color=color)), error_y=errors,
        customdata=custom,
        hovertemplate=(f"<b>{name}</b><br>level L%{{customdata[0]}} · remaining %{{x:.1f}}%<br>{arm_views.hover_note(arm)}"
                       f"{'change in ' if delta else ''}{METRICS.get(metric, (metric,))[0]} mean %{{y:{f}}}{u}<br>"
                       f"95% CI [%{{customdata[2]:{f}}}, %{{customdata[3]:{f}}}]{u}<br>"
                       "replicates: %{customdata[4]}<extra></extra>")),
        row=row, col=col)
    odd = part[~part["balanced"].fillna(True).astype(bool)]
    if len(odd):
        fig.add_trace(go.Scatter(
            x=(100 * odd["remaining"]).tolist(), y=(s * odd["mean"]).tolist(), mode="markers",
            name="unequal replication", legendgroup="unequal", showlegend=False,
            marker=dict(symbol=UNEQUAL["symbol"], size=UNEQUAL["size"], color=UNEQUAL["color"], line=dict(width=2.5)),
            customdata=odd[["level", "replication"]].to_numpy(),
            hovertemplate=(f"<b>{name}</b> · L%{{customdata[0]}}<br>⚠ %{{customdata[1]}}<br>the mean weighs each "
                           "family's seeds equally, so an unbalanced cell is not comparable to the others<extra></extra>")),
            row=row, col=col)


def sparsity_figure(df: pd.DataFrame, metric: str = "accuracy", by: str = "shots", title: str | None = None,
                    height: int = 420, value: str | None = None, runs: bool = False) -> go.Figure:
    """Metric vs remaining weights. ``by='shots'``: one panel per method (VP | LP), one line per shot
    count; ``by='method'``: one panel per shot count, VP and LP lines; at most three panels per row.
    Each arm styled by lthvp.ui.arm_views (random dashed; quantized arms as markers). ``value='delta'``
    draws a paired difference (report.paired_difference) in the metric's units; ``runs`` adds every
    run as a point that carries its hash (click to open)."""
    if by not in ("shots", "method"):
        raise ValueError("by must be 'shots' or 'method'")
    agg = with_replication(aggregate(df, value or metric), df, value or metric)
    if agg.empty:
        fig = go.Figure()
        fig.update_layout(title=title or "no results for this selection", height=height)
        return fig
    methods = [m for m in ("vp", "lp") if m in set(agg["method"])] + sorted(set(agg["method"]) - {"vp", "lp"})
    shots = shots_order(agg["shots"].unique())
    facets = methods if by == "shots" else shots
    facet_titles = [METHOD_NAMES.get(f, f) for f in facets] if by == "shots" else [shots_label(f) for f in facets]
    ncols = 2 if len(facets) == 4 else min(len(facets), 3)  # four shot counts: 2 x 2, none left alone
    nrows = -(-len(facets) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, shared_yaxes=True, subplot_titles=facet_titles,
                        horizontal_spacing=0.05, vertical_spacing=0.2 if nrows > 1 else 0.0)
    seen = set()
    datasets = sorted(agg["dataset"].unique())
    for ci, facet in enumerate(facets, start=1):
        sub = agg[agg["method"] == facet] if by == "shots" else agg[agg["shots"] == facet]
        lines = shots_order(sub["shots"].unique()) if by == "shots" else [m for m in methods if m in set(sub["method"])]
        for li, line in enumerate(lines):
            for arm in arm_views.arm_order(sub["arm"]):
                for ds in datasets:
                    part = sub[((sub["shots"] == line) if by == "shots" else (sub["method"] == line))
                               & (sub["arm"] == arm) & (sub["dataset"] == ds)]
                    if part.empty:
                        continue
                    if by == "shots":
                        color = PALETTE[shots.index(line) % len(PALETTE)]
                        label = shots_label(line)
                    else:
                        color = METHOD_COLORS.get(line, PALETTE[li % len(PALETTE)])
                        label = METHOD_NAMES.get(line, line)
                    if len(datasets) > 1:
                        label = f"{ds} · {label}"
                    label += arm_views.legend_suffix(arm)
                    row, col = (ci - 1) // ncols + 1, (ci - 1) % ncols + 1
                    _add_curve(fig, part, label, color, metric, row, col, legendgroup=label,
                               showlegend=label not in seen, arm=arm, delta=bool(value))
                    seen.add(label)
                    if runs:
                        raw = df[(df["arm"] == arm) & (df["dataset"] == ds) & (df["method"] == (facet if by == "shots" else line))
                                 & (df["shots"] == (line if by == "shots" else facet))]
                        _add_runs(fig, raw, value or metric, metric, color, label, row, col, delta=bool(value))
    tickvals, ticktext = level_ticks(df[df["arm"] == "ticket"] if (df["arm"] == "ticket").any() else df)
    fig.update_xaxes(type="log", autorange="reversed", tickvals=tickvals, ticktext=ticktext, tickangle=-45,
                     showgrid=True, matches="x")
    axis_title = "remaining weights (all prunable, log scale)"
    fig.update_xaxes(title_text=axis_title if ncols < 3 else "remaining (log)")
    if ncols >= 3:  # one full title under the middle panel of the last row; the others would overlap
        fig.update_xaxes(title_text=axis_title, row=nrows, col=2)
    y_title = _axis_title(metric, delta=bool(value))
    for r in range(1, nrows + 1):
        fig.update_yaxes(title_text=y_title, row=r, col=1)
    if value:
        fig.add_hline(y=0, line=dict(color="#444", width=1, dash="dot"))
    unequal = int((~agg["balanced"].fillna(True).astype(bool)).sum())
    if unequal:  # one legend entry for the rings, however many panels carry them
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="⚠ unequal replication",
                                 legendgroup="unequal", marker=dict(symbol=UNEQUAL["symbol"], size=12,
                                                                    color=UNEQUAL["color"], line=dict(width=2.5))))
    fig.update_layout(title=title, height=height * nrows - 60 * (nrows - 1), hovermode="closest",
                      legend=dict(orientation="h", y=-0.35 / nrows), margin=dict(t=60, b=40),
                      meta={"metric": metric, "by": by, "groups": int(len(agg)), "value": value or metric,
                            **({"unequal": unequal} if unequal else {})})  # cells with unequal replication
    return fig


def _add_runs(fig, raw: pd.DataFrame, column: str, metric: str, color: str, label: str, row: int, col: int,
              delta: bool = False) -> None:
    """Every run of one line as a small point carrying its hash; seeds are spread by up to +-3%
    along x so that runs at one level do not hide each other. Runs outside the shown study
    (``in_study`` False: added after it) are stars (ADDED), named so in the hover."""
    if raw.empty:
        return
    seed_rank, seeds = pd.factorize(raw["seed"])
    jitter = 1 + 0.03 * (seed_rank - (len(seeds) - 1) / 2) / max(1, len(seeds) - 1)
    family = raw["family"].astype(object).where(raw["family"].notna(), "legacy") if "family" in raw \
        else pd.Series("legacy", index=raw.index)
    custom = np.stack([raw["hash"].to_numpy(), raw["level"].to_numpy(), raw["seed"].to_numpy(),
                       family.to_numpy()], axis=1)
    x = 100 * raw["remaining_fraction"] * jitter
    y = _scale(metric) * raw[column]
    added = ~raw["in_study"].astype(bool).to_numpy() if "in_study" in raw else np.zeros(len(raw), bool)
    value = f"%{{y:{'.2f' if _scale(metric) == 100 else '.3f'}}}{unit(metric, delta)}"
    for extra, mask in ((False, ~added), (True, added)):
        if not mask.any():
            continue
        fig.add_trace(go.Scatter(
            x=x[mask].tolist(), y=y[mask].tolist(), mode="markers", name=f"{label} runs" + (" added later" if extra else ""),
            legendgroup=label, showlegend=False, customdata=custom[mask],
            marker=dict(size=ADDED["size"] if extra else 5, symbol=ADDED["symbol"] if extra else "circle",
                        color=_rgba(color, 0.9 if extra else 0.55), line=dict(width=1 if extra else 0, color="#222")),
            hovertemplate=(f"<b>{label}</b> · one run" + (" <b>added after the study</b> (not one of its planned runs)"
                                                          if extra else "")
                           + "<br>level L%{customdata[1]} · family %{customdata[3]} · seed %{customdata[2]}<br>"
                           + f"{'change in ' if delta else ''}{METRICS.get(metric, (metric,))[0]} {value}"
                           + "<br>hash %{customdata[0]} (click to open)<extra></extra>")),
            row=row, col=col)


def headline_figure(df: pd.DataFrame, dataset: str | None = None, shots: str | None = None) -> go.Figure:
    """Overview: accuracy and ECE vs remaining weights, VP vs LP, one dataset and shot count."""
    if df.empty:
        return go.Figure().update_layout(title="the store is empty")
    t = df[df["arm"] == "ticket"] if (df["arm"] == "ticket").any() else df
    dataset = dataset or t["dataset"].value_counts().idxmax()
    t = t[t["dataset"] == dataset]
    shots = shots or t["shots"].value_counts().idxmax()
    part = df[(df["dataset"] == dataset) & (df["shots"] == shots)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Accuracy ↑", "ECE ↓ (calibration error)"],
                        horizontal_spacing=0.09)
    for col, metric in enumerate(("accuracy", "ece"), start=1):
        agg = with_replication(aggregate(part, metric), part, metric)
        for method in [m for m in ("vp", "lp") if m in set(agg["method"])]:
            for arm in arm_views.arm_order(agg["arm"]):
                sub = agg[(agg["method"] == method) & (agg["arm"] == arm)]
                if sub.empty:
                    continue
                label = METHOD_NAMES.get(method, method) + arm_views.legend_suffix(arm)
                _add_curve(fig, sub, label, METHOD_COLORS.get(method, PALETTE[0]), metric, 1, col, label, col == 1,
                           arm=arm)
        fig.update_yaxes(title_text=_axis_title(metric), row=1, col=col)
    tickvals, ticktext = level_ticks(part[part["arm"] == "ticket"] if (part["arm"] == "ticket").any() else part)
    fig.update_xaxes(type="log", autorange="reversed", tickvals=tickvals, ticktext=ticktext, tickangle=-45,
                     title_text="remaining weights (log)", matches="x")
    fig.update_layout(title=f"{dataset}, {shots_label(shots)}: what sparsity costs VP and LP", height=420,
                      legend=dict(orientation="h", y=-0.4), margin=dict(t=70),
                      meta={"dataset": dataset, "shots": str(shots)})
    return fig


# --- calibration --------------------------------------------------------------------------------
def record_label(record: dict) -> str:
    c = record["config"]
    arm = "" if c.get("arm", "ticket") == "ticket" else f" {c['arm']}"
    family = "" if c.get("family") is None else f" · family {c['family']}"
    return (f"{METHOD_NAMES.get(c['method'], c['method'])} L{c['level']}{arm} "
            f"({100 * record['remaining_fraction']:.1f}%) {shots_label(c['shots'])} s{c['seed']}{family}")


def calibration_shift_figure(df: pd.DataFrame, metric: str = "ece") -> go.Figure:
    """Dense vs sparse at a glance: a metric (mean over seeds) per level, VP and LP bars."""
    agg = aggregate(df, metric)
    s = _scale(metric)
    fig = go.Figure()
    for method in [m for m in ("vp", "lp") if m in set(agg["method"])]:
        sub = agg[agg["method"] == method].sort_values("level")
        fig.add_trace(go.Bar(x=[f"L{lv} {100 * r:.1f}%" for lv, r in zip(sub["level"], sub["remaining"])],
                             y=s * sub["mean"], name=METHOD_NAMES.get(method, method),
                             marker_color=METHOD_COLORS.get(method),
                             error_y=dict(type="data", array=(s * (sub["hi"] - sub["mean"])).fillna(0).tolist()),
                             customdata=sub["n"], hovertemplate="%{x}: %{y:.3f}<br>%{customdata} runs<extra></extra>"))
    fig.update_layout(barmode="group", height=320, yaxis_title=_axis_title(metric), xaxis_title="level",
                      margin=dict(t=30))
    return fig
