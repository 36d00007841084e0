"""Comparing 2-6 runs (pure plotly/pandas, no Streamlit): the comparison link's run list, each
run's letter and colour, the summary table, training curves and reliability curves overlaid, and
reliability diagrams and prompts side by side (through reliability_plots and prompt_plots).

Units: accuracies and calibration errors in %, differences between runs in points."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Sequence

import pandas as pd
import plotly.graph_objects as go

from lthvp.analysis.report import shots_label
from lthvp.ui import prompt_plots, reliability_plots
from lthvp.ui.dashboard import is_hash
from lthvp.ui.plots import METHOD_NAMES, PALETTE
from lthvp.ui.text import plain

MIN_RUNS, MAX_RUNS = 2, 6
LETTERS = "ABCDEF"


# --- the link -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunLink:
    """What a ``hashes=`` value asks for: the stored runs to compare (distinct, in the link's order)
    and what was left out, by reason."""

    hashes: tuple[str, ...]
    ill_formed: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    repeated: tuple[str, ...] = ()
    named: int = 0  # distinct entries the link names

    @property
    def refused(self) -> bool:
        return self.named > MAX_RUNS

    def refusal(self) -> str | None:
        """The one line shown instead of a comparison of too many runs."""
        if not self.refused:
            return None
        return (f"A comparison shows at most {MAX_RUNS} runs; this link names {self.named}. "
                f"Pick up to {MAX_RUNS} below.")

    def notice(self) -> str | None:
        """One line naming every entry left out (escaped: URL text is untrusted), or None."""
        parts = []
        if self.ill_formed:
            parts.append(f"not a run hash (16 hex digits): {plain(', '.join(self.ill_formed), 200)}")
        if self.unknown:
            parts.append(f"no stored run: {plain(', '.join(self.unknown), 200)}")
        if self.repeated:
            parts.append(f"named twice: {plain(', '.join(self.repeated), 200)}")
        return "The link's hashes= left out " + "; ".join(parts) + "." if parts else None


def parse_runs(values: str | Sequence[str] | None, known: Collection[str]) -> RunLink:
    """Read ``hashes=h1,h2,...`` (one value or several ``hashes=`` values); each entry is checked with
    dashboard.is_hash and against the stored hashes ``known``; order kept, repeats dropped."""
    if values is None:
        values = []
    elif isinstance(values, str):
        values = [values]
    entries = [e.strip() for v in values for e in str(v).split(",") if e.strip()]
    seen: dict[str, None] = {}
    repeated: dict[str, None] = {}
    for e in entries:
        (repeated if e in seen else seen)[e] = None
    ok = [e for e in seen if is_hash(e) and e in known]
    return RunLink(hashes=tuple(ok), ill_formed=tuple(e for e in seen if not is_hash(e)),
                   unknown=tuple(e for e in seen if is_hash(e) and e not in known), repeated=tuple(repeated),
                   named=len(seen))


def link_value(hashes: Sequence[str]) -> str:
    """The ``hashes=`` value of a comparison (the page's stable URL is ``/compare?hashes=<this>``)."""
    return ",".join(hashes)


# --- labels and the table -----------------------------------------------------------------------
def short_label(letter: str, config: dict) -> str:
    """'A · VP L3 1-shot s0 f1': short enough for six panel titles in a row."""
    arm = "" if config.get("arm", "ticket") == "ticket" else f" {config['arm']}"
    family = "" if config.get("family") is None else f" f{config['family']}"
    return (f"{letter} · {METHOD_NAMES.get(config.get('method'), config.get('method'))} L{config.get('level')}{arm} "
            f"{shots_label(config.get('shots'))} s{config.get('seed')}{family}")


def lettered(records: Sequence[dict]) -> list[tuple[str, str, dict]]:
    """(letter, short label, record) per run, A first; the colour of run i is PALETTE[i]."""
    return [(LETTERS[i], short_label(LETTERS[i], r["config"]), r) for i, r in enumerate(records)]


def summary_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per run: metrics in % (NLL, Brier as numbers), differences from run A in points; the
    dataset and every other setting are in the config diff."""
    rows = []
    first = records[0]["metrics"] if records else {}
    for letter, label, r in lettered(records):
        m = r["metrics"]
        rows.append({"run": letter, "label": label.split(" · ", 1)[1], "hash": r["hash"],
                     "accuracy %": round(100 * m["accuracy"], 2),
                     "accuracy vs A (points)": round(100 * (m["accuracy"] - first["accuracy"]), 2),
                     "ECE %": round(100 * m["ece"], 2), "ECE vs A (points)": round(100 * (m["ece"] - first["ece"]), 2),
                     "MCE %": round(100 * m["mce"], 2), "NLL (nats)": round(m["nll"], 3), "Brier": round(m["brier"], 3),
                     "remaining %": round(100 * r["remaining_fraction"], 2), "chosen epoch": r.get("best_epoch")})
    return pd.DataFrame(rows)


def diff_frame(diff, letters: Sequence[str]) -> pd.DataFrame:
    """The differing (or shared) rows of a config_diff as a table: one column per run letter."""
    return pd.DataFrame([[row.field, *row.values] for row in diff], columns=["field", *letters])


# --- figures ------------------------------------------------------------------------------------
CURVES = {"accuracy": (("val_acc", "validation accuracy", None), ("train_acc", "train accuracy", "dot")),
          "loss": (("val_nll", "validation NLL", None), ("train_loss", "train loss", "dot"))}


def curves_overlay(records: Sequence[dict], panel: str = "accuracy", height: int = 380) -> go.Figure:
    """Every run's training curves on one axis: ``panel`` 'accuracy' (%) or 'loss' (NLL, nats), per
    epoch, or per optimizer step when every run logged steps; validation solid, training dotted, the
    chosen epoch a star on the validation accuracy. One colour and one legend entry per run. One
    panel per figure, so the page can put two side by side and stack them on a phone."""
    frames = [pd.DataFrame(r.get("curves") or []) for r in records]
    by_steps = all(not f.empty and "steps" in f and f["steps"].notna().all() for f in frames)
    pct = panel == "accuracy"
    fig = go.Figure()
    for i, ((letter, label, r), curves) in enumerate(zip(lettered(records), frames)):
        if curves.empty:
            continue
        color, shown = PALETTE[i % len(PALETTE)], False
        x = curves["steps"] if by_steps else curves["epoch"]
        for col, what, dash in CURVES[panel]:
            if col not in curves or not curves[col].notna().any():
                continue
            fig.add_trace(go.Scatter(x=x, y=(100 if pct else 1) * curves[col], mode="lines+markers", name=label,
                                     legendgroup=letter, showlegend=not shown, line=dict(color=color, dash=dash, width=2),
                                     marker=dict(size=4, color=color),
                                     hovertemplate=f"<b>{label}</b><br>{what} "
                                                   + ("%{y:.1f}%" if pct else "%{y:.3f} nats")
                                                   + f"<br>{'step' if by_steps else 'epoch'} %{{x}}<extra></extra>"))
            shown = True
        best = r.get("best_epoch")
        if pct and best is not None and "val_acc" in curves and (curves["epoch"] == best).any():
            at = curves[curves["epoch"] == best].iloc[0]
            fig.add_trace(go.Scatter(x=[at["steps"] if by_steps else best], y=[100 * at["val_acc"]], mode="markers",
                                     name=f"{letter} chosen epoch", legendgroup=letter, showlegend=False,
                                     marker=dict(symbol="star", size=13, color=color, line=dict(width=1, color="#222")),
                                     hovertemplate=f"<b>{label}</b><br>chosen epoch {best}: validation accuracy "
                                                   "%{y:.1f}%<extra></extra>"))
    fig.update_xaxes(title_text="optimizer steps" if by_steps else "epoch")
    fig.update_yaxes(title_text="accuracy (%) ↑" if pct else "loss / NLL (nats) ↓")
    fig.update_layout(height=height, legend=dict(orientation="h", y=-0.25), margin=dict(t=30, b=40),
                      meta={"runs": [label for _, label, _ in lettered(records)], "x": "steps" if by_steps else "epoch",
                            "panel": panel})
    return fig


def reliability_overlay(records: Sequence[dict], height: int = 420) -> go.Figure:
    """Every run's reliability curve on one diagram: accuracy (%) per confidence bin against the
    diagonal, from the same stored bin tables the side-by-side diagrams draw; ECE in the legend."""
    fig = go.Figure(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line=dict(color="#777", dash="dash"),
                               name="perfect calibration", hoverinfo="skip"))
    eces = []
    for i, (letter, label, r) in enumerate(lettered(records)):
        table = reliability_plots.panel_table(r)
        filled = table[table["count"] > 0]
        ece = reliability_plots.panel_ece(r)
        eces.append(ece)
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=100 * filled["confidence"], y=100 * filled["accuracy"], mode="lines+markers",
                                 name=f"{label} · ECE {100 * ece:.2f}%", line=dict(color=color, width=2),
                                 marker=dict(color=color, size=7), customdata=filled["count"],
                                 hovertemplate=f"<b>{label}</b><br>confidence %{{x:.1f}}%<br>accuracy %{{y:.1f}}%"
                                               "<br>%{customdata} samples<extra></extra>"))
    fig.update_xaxes(range=[0, 100], title_text="confidence (max probability, %)")
    fig.update_yaxes(range=[0, 100], title_text="accuracy (%)")
    fig.update_layout(height=height, legend=dict(orientation="h", y=-0.2), margin=dict(t=30),
                      meta={"ece": eces, "runs": [label for _, label, _ in lettered(records)]})
    return fig


def reliability_rows(records: Sequence[dict], per_row: int = 3) -> list[go.Figure]:
    """The runs' reliability diagrams side by side (reliability_plots.reliability_figure), at most
    ``per_row`` panels per figure so titles and axes stay readable, rows balanced (4 runs: 2 + 2)."""
    panels = [(label, r) for _, label, r in lettered(records)]
    rows = -(-len(panels) // per_row)
    size = -(-len(panels) // max(rows, 1))
    return [reliability_plots.reliability_figure(panels[i:i + size], height=440) for i in range(0, len(panels), size)]


def prompt_figures(records: Sequence[dict], view: str = "as learned") -> tuple[list[go.Figure], list[str]]:
    """Each run's learned prompt in one of prompt_plots.PROMPT_VIEWS (an image_grid of one, titled
    with the run's label; one figure per run so the page lays them out side by side and stacks them
    on a phone), and the labels of runs without a prompt (LP, or records from before prompts)."""
    figures, without = [], []
    for _, label, r in lettered(records):
        if r.get("prompt_png"):
            image = prompt_plots.prompt_view(prompt_plots.decode_png(r["prompt_png"]), view)
            figures.append(prompt_plots.image_grid([(label, image)], cols=1, scale=4))
        else:
            without.append(label)
    return figures, without
