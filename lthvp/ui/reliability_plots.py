"""Reliability diagrams (pure plotly): accuracy per confidence bin against the diagonal, the gap
split into over- and under-confidence, ECE/MCE from the stored bin table, and the confidence
histogram under each panel."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lthvp.results.metrics import ece_from_table, mce_from_table, table_from_json


def panel_table(record: dict) -> pd.DataFrame:
    return table_from_json(record["reliability"])


def panel_ece(record: dict) -> float:
    """The ECE a reliability panel prints: from the same stored bin table it draws."""
    return ece_from_table(panel_table(record))


def reliability_figure(panels: Sequence[tuple[str, dict]], height: int = 520) -> go.Figure:
    """Reliability diagrams side by side: per panel, accuracy per confidence bin (bars) against the
    diagonal with the gap shaded, ECE/MCE from the bin table, and the confidence histogram under it."""
    n = max(1, len(panels))
    fig = make_subplots(rows=2, cols=n, shared_xaxes=True, row_heights=[0.74, 0.26], vertical_spacing=0.06,
                        horizontal_spacing=0.05, subplot_titles=[title for title, _ in panels] or [""])
    eces = []
    for ci, (title, record) in enumerate(panels, start=1):
        table = panel_table(record)
        filled = table[table["count"] > 0]
        centers = 100 * ((filled["bin_lower"] + filled["bin_upper"]) / 2).to_numpy()  # axes in %
        width = 100 * float((table["bin_upper"] - table["bin_lower"]).iloc[0]) if len(table) else 100 / 15
        total = int(table["count"].sum())
        ece, mce = ece_from_table(table), mce_from_table(table)
        eces.append(ece)
        first = ci == 1
        fig.add_trace(go.Bar(x=centers, y=100 * filled["accuracy"], width=width, name="accuracy",
                             marker=dict(color="#1f77b4", line=dict(color="#0b3d66", width=1)),
                             legendgroup="acc", showlegend=first,
                             customdata=np.stack([100 * filled["bin_lower"], 100 * filled["bin_upper"],
                                                  filled["count"], 100 * filled["confidence"]], axis=1),
                             hovertemplate=("confidence bin (%{customdata[0]:.1f}%, %{customdata[1]:.1f}%]<br>"
                                            "accuracy %{y:.1f}% · mean confidence %{customdata[3]:.1f}%<br>"
                                            "%{customdata[2]} samples<extra></extra>")), row=1, col=ci)
        gap = 100 * (filled["confidence"] - filled["accuracy"]).to_numpy()
        for sign, name, fill, edge in ((1, "over-confident (confidence > accuracy)", "rgba(220,30,30,0.35)",
                                        "rgba(180,0,0,0.8)"),
                                       (-1, "under-confident (accuracy > confidence)", "rgba(44,160,44,0.35)",
                                        "rgba(20,110,20,0.8)")):
            part = sign * gap > 0
            fig.add_trace(go.Bar(x=centers[part], y=gap[part], base=100 * filled["accuracy"].to_numpy()[part], width=width,
                                 name=name, marker=dict(color=fill, line=dict(color=edge, width=1)),
                                 legendgroup=f"gap{sign}", showlegend=first, hoverinfo="skip"), row=1, col=ci)
        fig.add_trace(go.Scatter(x=[0, 100], y=[0, 100], mode="lines", line=dict(color="#555", dash="dash"),
                                 name="perfect calibration", legendgroup="diag", showlegend=first,
                                 hoverinfo="skip"), row=1, col=ci)
        fig.add_trace(go.Bar(x=centers, y=100 * filled["count"] / max(total, 1), width=width, name="share of samples",
                             marker=dict(color="#7f7f7f"), legendgroup="hist", showlegend=first,
                             customdata=filled["count"],
                             hovertemplate="%{customdata} samples (%{y:.1f}%)<extra></extra>"), row=2, col=ci)
        xref = "x domain" if ci == 1 else f"x{ci} domain"
        yref = "y domain" if ci == 1 else f"y{ci} domain"
        fig.add_annotation(x=0.03, y=0.97, xref=xref, yref=yref, showarrow=False, align="left",
                           xanchor="left", yanchor="top", bgcolor="rgba(255,255,255,0.8)",
                           text=f"ECE {100 * ece:.2f}%<br>MCE {100 * mce:.2f}%<br>n = {total}")
        fig.update_yaxes(range=[0, 100], row=1, col=ci)
        fig.update_xaxes(range=[0, 100], row=1, col=ci)
        fig.update_xaxes(range=[0, 100], title_text="confidence (max probability, %)", row=2, col=ci)
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="share (%)", row=2, col=1)
    fig.update_layout(barmode="overlay", height=height, legend=dict(orientation="h", y=-0.18), bargap=0,
                      margin=dict(t=60), meta={"ece": eces, "titles": [t for t, _ in panels]})
    return fig
