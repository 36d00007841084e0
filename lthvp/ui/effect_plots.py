"""Forest plots of effects (pure plotly, no Streamlit): one marker per (shots, method) with its
95% interval (dark bar) and its simultaneous interval over the question's shot counts (light
bar); filled markers are detected at 5% after the correction (``p_adj``), which is exactly when
the light bar misses zero. The hover has p, the corrected p, the MDE and the family-mean check."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lthvp.analysis.effects import points_scale, verdict
from lthvp.analysis.report import shots_label, shots_order
from lthvp.ui.plots import METHOD_COLORS, METHOD_NAMES


def _fmt_p(p) -> str:
    return "n/a" if p != p else f"{p:.3g}"


def _col(part: pd.DataFrame, name: str, fallback: str | None = None) -> pd.Series:
    """A column of the effects table, or its older stand-in (tables saved before analysis v2)."""
    if name in part:
        return part[name]
    return part[fallback] if fallback else pd.Series(float("nan"), index=part.index)


def forest_figure(rows: pd.DataFrame, title: str, metric: str, height: int | None = None) -> go.Figure:
    """Rows of :func:`lthvp.analysis.effects.effects`; y = shots (x method), x = estimate with its CI."""
    scale = points_scale(metric)
    unit = " (points)" if scale == 100.0 else ""
    fig = go.Figure()
    legend_adj = True  # one legend entry for the light bars
    order = shots_order(rows["shots"].unique()) if not rows.empty else []
    for (method, arm), part in rows.groupby(["method", "arm"], sort=True):
        part = part.set_index("shots").reindex([s for s in order if s in set(part["shots"])]).reset_index()
        name = METHOD_NAMES.get(method, method) + ("" if arm in ("ticket",) else f" · {arm}")
        labels = [f"{shots_label(s)} · {name}" for s in part["shots"]]
        p_adj = _col(part, "p_adj", "p_holm")
        detected = p_adj < 0.05
        lo_adj, hi_adj = _col(part, "ci_low_adj"), _col(part, "ci_high_adj")
        if lo_adj.notna().any():  # the simultaneous interval, drawn under the 95% one
            fig.add_trace(go.Scatter(
                x=scale * part["estimate"], y=labels, mode="markers", hoverinfo="skip",
                name="simultaneous CI (over the shot counts)", showlegend=legend_adj,
                marker={"size": 12, "symbol": "line-ew-open", "color": "rgba(140,140,140,0.35)", "line": {"width": 6}},
                error_x={"type": "data", "symmetric": False, "array": scale * (hi_adj - part["estimate"]),
                         "arrayminus": scale * (part["estimate"] - lo_adj), "thickness": 6, "width": 0,
                         "color": "rgba(140,140,140,0.35)"}))
            legend_adj = False
        mde, lo_fm, hi_fm = _col(part, "mde"), _col(part, "ci_low_fm"), _col(part, "ci_high_fm")
        fig.add_trace(go.Scatter(
            x=scale * part["estimate"], y=labels,
            mode="markers", name=name,
            marker={"size": 11, "color": METHOD_COLORS.get(method, "#444"), "symbol": [
                "circle" if d else "circle-open" for d in detected], "line": {"width": 2}},
            error_x={"type": "data", "symmetric": False, "array": scale * (part["ci_high"] - part["estimate"]),
                     "arrayminus": scale * (part["estimate"] - part["ci_low"]), "thickness": 2},
            customdata=list(zip(part["contrast"], [_fmt_p(p) for p in part["p"]], [_fmt_p(p) for p in p_adj],
                                part["n_families"], part["n_runs"], part["unit"],
                                [f"{scale * v:.3g}" if v == v else "n/a" for v in mde],
                                [f"[{scale * a:+.3g}, {scale * b:+.3g}]" if a == a else "n/a"
                                 for a, b in zip(lo_fm, hi_fm)])),
            hovertemplate=("%{y}<br>%{customdata[0]}: %{x:.3f}" + unit + "<br>p = %{customdata[1]}, "
                           "corrected p = %{customdata[2]}<br>MDE (80% power) = %{customdata[6]}<br>"
                           "family-mean check: %{customdata[7]}<br>%{customdata[3]} families (%{customdata[5]}), "
                           "%{customdata[4]} runs<extra></extra>")))
    fig.add_vline(x=0, line={"color": "#888", "dash": "dot"})
    n = max(1, len(rows))
    fig.update_layout(title=title, height=height or max(260, 70 + 34 * n), margin={"l": 10, "r": 10, "t": 50, "b": 40},
                      xaxis_title=f"estimate{unit}", legend={"orientation": "h", "y": -0.2}, template="plotly_white")
    fig.update_yaxes(autorange="reversed")
    return fig


def verdict_lines(rows: pd.DataFrame, metric: str) -> str:
    """One line per (method, shot count) of an effects-table slice: the verdict in words, as the
    page's other questions state it (corrected p, interval, MDE when not detected)."""
    order = {s: i for i, s in enumerate(shots_order(rows["shots"]))}
    rows = rows.assign(_o=rows["shots"].map(order)).sort_values(["method", "_o"])
    return "\n".join(f"{METHOD_NAMES.get(r['method'], r['method']):>12} {shots_label(r['shots']):>10}: "
                     f"{verdict(r, metric=metric)}" for _, r in rows.iterrows())
