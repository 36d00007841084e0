"""Drawing the subpopulation analysis (pure plotly/numpy, no Streamlit): per-class changes as bars
with their intervals, and test images enlarged without smoothing for the exemplar gallery."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lthvp.ui.plots import METHOD_COLORS, METHOD_NAMES

METRIC_NAMES = {"accuracy": "accuracy", "ece": "ECE"}


def _escaped(text) -> str:
    """Class names come from records (an imported bundle): plotly reads <a>, <b>, <br> in labels."""
    return html.escape(str(text), quote=False)


def per_class_figure(rows: pd.DataFrame, metric: str, title: str, methods=None) -> go.Figure:
    """Rows of :func:`lthvp.analysis.subpopulations.per_class_effects` for one level: x = class
    name, one bar per method (level minus dense, in points) with its 95% t-interval; a class whose
    change is detected after Holm over the classes carries a star. The y axis stops at +-105
    points (no change can be larger); a wider interval is cut there, its hover has the numbers."""
    fig = go.Figure()
    methods = [m for m in (methods or ["vp", "map", "lp", "vp-lp"]) if m in set(rows["method"])]
    order = rows.drop_duplicates("class").sort_values("class")
    names = [_escaped(n) for n in order["class_name"]]
    for method in methods:
        part = rows[rows["method"] == method].set_index("class").reindex(order["class"])
        est, lo, hi = 100 * part["estimate"], 100 * part["ci_low"], 100 * part["ci_high"]
        detected = part["p_holm"] < 0.05
        hover = [f"{_escaped(n)} · {METHOD_NAMES.get(method, method)}<br>dense {100 * d:.1f}, sparse {100 * s:.1f}"
                 f"<br>change {e:+.1f} [{a:+.1f}, {b:+.1f}] pts<br>p {p:.3g}, Holm p {q:.3g} · {u} {unit}s"
                 for n, d, s, e, a, b, p, q, u, unit in zip(names, part["dense"], part["sparse"], est, lo, hi,
                                                            part["p"], part["p_holm"], part["n_units"], part["unit"])]
        fig.add_trace(go.Bar(  # plain lists: the chart's JSON stays readable (no base64 typed arrays)
            x=names, y=est.tolist(), name=METHOD_NAMES.get(method, method), marker_color=METHOD_COLORS.get(method),
            error_y={"type": "data", "symmetric": False, "array": (hi - est).fillna(0).tolist(),
                     "arrayminus": (est - lo).fillna(0).tolist(), "thickness": 1.5},
            text=["*" if d else "" for d in detected], textposition="outside", hovertext=hover, hoverinfo="text"))
    fig.add_hline(y=0, line_color="#888", line_width=1)
    spans = [100 * rows[c].abs().max() for c in ("ci_low", "ci_high", "estimate") if len(rows)]
    top = min(105.0, 1.1 * max([v for v in spans if v == v] + [1.0]))  # a change of accuracy or ECE is at
    fig.update_yaxes(range=[-top, top])  # most 100 points: a wider t-interval (df = 2) is cut at the axis
    fig.update_layout(title=_escaped(title), barmode="group", height=380, margin={"t": 60, "b": 40, "l": 60, "r": 20},
                      yaxis_title=f"{METRIC_NAMES.get(metric, metric)}: sparse - dense (points)",
                      xaxis={"type": "category", "title": "true class"}, legend={"orientation": "h", "y": -0.2})
    return fig


def enlarge(image: np.ndarray, size: int = 96) -> np.ndarray:
    """An (H, W, 3) image scaled up by a whole factor to at least ``size`` px on its longer side,
    each pixel a block (nearest neighbour): an 8x8 digit stays an 8x8 digit, not a blur."""
    factor = max(1, -(-size // max(image.shape[:2])))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
