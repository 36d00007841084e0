"""Forest plots of effects (pure plotly, no Streamlit): one marker per (shots, method) with its
95% interval; the Holm-adjusted p is in the hover, filled markers are detected at 5%."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lthvp.analysis.effects import points_scale
from lthvp.analysis.report import shots_label, shots_order
from lthvp.ui.plots import METHOD_COLORS, METHOD_NAMES


def _fmt_p(p) -> str:
    return "n/a" if p != p else f"{p:.3g}"


def forest_figure(rows: pd.DataFrame, title: str, metric: str, height: int | None = None) -> go.Figure:
    """Rows of :func:`lthvp.analysis.effects.effects`; y = shots (x method), x = estimate with its CI."""
    scale = points_scale(metric)
    unit = " (points)" if scale == 100.0 else ""
    fig = go.Figure()
    order = shots_order(rows["shots"].unique()) if not rows.empty else []
    for (method, arm), part in rows.groupby(["method", "arm"], sort=True):
        part = part.set_index("shots").reindex([s for s in order if s in set(part["shots"])]).reset_index()
        name = METHOD_NAMES.get(method, method) + ("" if arm in ("ticket",) else f" · {arm}")
        detected = part["p_holm"] < 0.05
        fig.add_trace(go.Scatter(
            x=scale * part["estimate"], y=[f"{shots_label(s)} · {name}" for s in part["shots"]],
            mode="markers", name=name,
            marker={"size": 11, "color": METHOD_COLORS.get(method, "#444"), "symbol": [
                "circle" if d else "circle-open" for d in detected], "line": {"width": 2}},
            error_x={"type": "data", "symmetric": False, "array": scale * (part["ci_high"] - part["estimate"]),
                     "arrayminus": scale * (part["estimate"] - part["ci_low"]), "thickness": 2},
            customdata=list(zip(part["contrast"], [_fmt_p(p) for p in part["p"]], [_fmt_p(p) for p in part["p_holm"]],
                                part["n_families"], part["n_runs"], part["unit"])),
            hovertemplate=("%{y}<br>%{customdata[0]}: %{x:.3f}" + unit + "<br>p = %{customdata[1]}, "
                           "Holm p = %{customdata[2]}<br>%{customdata[3]} families (%{customdata[5]} as unit), "
                           "%{customdata[4]} runs<extra></extra>")))
    fig.add_vline(x=0, line={"color": "#888", "dash": "dot"})
    n = max(1, len(rows))
    fig.update_layout(title=title, height=height or max(260, 70 + 34 * n), margin={"l": 10, "r": 10, "t": 50, "b": 40},
                      xaxis_title=f"estimate{unit}", legend={"orientation": "h", "y": -0.2}, template="plotly_white")
    fig.update_yaxes(autorange="reversed")
    return fig
