"""Layout fixes every chart gets on its way to the page (pure plotly, no Streamlit), so a figure
module cannot leave them out: subplot titles that fit their panel, a legend below the axis titles
rather than on them, annotation text readable on its own box, and a figure's panels split into
one figure each for narrow screens (:func:`lthvp.ui.charts.show` stacks them below 700 px)."""

from __future__ import annotations

import copy
import re
import textwrap

import plotly.graph_objects as go

LINE_PX = 17  # one extra line of a wrapped subplot title


def grid_shape(fig: go.Figure) -> tuple[int, int]:
    """Rows and columns of a make_subplots figure ((1, 1) for a plain one)."""
    grid = getattr(fig, "_grid_ref", None)
    return (len(grid), len(grid[0])) if grid else (1, 1)


def _is_subplot_title(a) -> bool:
    return (a.xref == "paper" and a.yref == "paper" and a.showarrow is False and a.xanchor == "center"
            and a.yanchor == "bottom")


def fit_subplot_titles(fig: go.Figure, width_px: int = 1100) -> go.Figure:
    """Wrap subplot titles to their panel's width (about ``width_px`` for the whole figure) and
    make room above each row for the extra lines, so neighbouring titles neither overlap nor run
    past the figure's edge."""
    rows, cols = grid_shape(fig)
    titles = [a for a in fig.layout.annotations if _is_subplot_title(a) and a.text]
    if cols < 2 or not titles:
        return fig
    size = 13 if cols >= 4 else 14
    per_line = max(10, int(width_px / cols / (0.6 * size)))
    lines = 1
    for a in titles:
        parts = textwrap.wrap(re.sub(r"<br\s*/?>", " ", a.text), per_line) or [a.text]
        a.text, a.font.size = "<br>".join(parts), size
        lines = max(lines, len(parts))
    if lines > 1:
        height = fig.layout.height or 450
        margin = fig.layout.margin
        plot_px = max(100, height - (margin.t if margin.t is not None else 100) - (margin.b if margin.b is not None else 80))
        shrink = (lines - 1) * LINE_PX / plot_px
        tops = {}
        for name in [k for k in fig.layout if k.startswith("yaxis")]:
            axis = fig.layout[name]
            if axis.domain and axis.domain[1] - axis.domain[0] > shrink:
                lo, hi = axis.domain
                tops[round(hi, 6)] = hi - shrink
                axis.domain = [lo, hi - shrink]
        for a in titles:
            a.y = tops.get(round(a.y, 6), a.y)
    return fig


def legend_rows(fig: go.Figure, width_px: int = 520) -> int:
    """How many rows a horizontal legend takes at ``width_px`` (entries packed greedily, about
    6.5 px per character plus the symbol)."""
    names = []
    for t in fig.data:
        shown = t.showlegend if "showlegend" in t else False
        if shown is not False and t.name and t.name not in names:
            names.append(t.name)
    rows, used = 1, 0
    for name in names:
        w = 45 + 6.5 * len(name)
        if used and used + w > width_px:
            rows, used = rows + 1, 0
        used += w
    return rows


def legend_below(fig: go.Figure, width_px: int = 520, height: int | None = None) -> go.Figure:
    """A horizontal legend placed under the plot (y < 0 of the plot area) collides with the x-axis
    title; anchored to the bottom of the figure instead, under a bottom margin that holds the axis
    title and the legend's rows, it keeps clear of both (the figure grows by the legend's height)."""
    legend = fig.layout.legend
    if legend.orientation == "h" and legend.y is not None and (legend.y < 0 or height is not None):
        extra = 24 * legend_rows(fig, width_px)
        bottom = (70 if height is not None else max(fig.layout.margin.b or 0, 70)) + extra
        fig.update_layout(legend=dict(yref="container", y=0, yanchor="bottom", x=0, xanchor="left"),
                          margin=dict(b=bottom), height=(height or fig.layout.height or 450) + extra)
    return fig


def _rgb(css: str) -> tuple[float, float, float, float] | None:
    """(r, g, b, alpha) of '#rrggbb' / 'rgb(...)' / 'rgba(...)', else None."""
    css = (css or "").strip().lower()
    if re.fullmatch(r"#[0-9a-f]{6}", css):
        return int(css[1:3], 16), int(css[3:5], 16), int(css[5:7], 16), 1.0
    m = re.fullmatch(r"rgba?\(([^)]*)\)", css)
    if m:
        v = [float(x) for x in m.group(1).split(",")]
        return v[0], v[1], v[2], v[3] if len(v) > 3 else 1.0
    return None


def luminance(r: float, g: float, b: float) -> float:
    """WCAG relative luminance of an sRGB colour (0-255 channels)."""
    def lin(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def readable_text(fig: go.Figure, dark: bool) -> go.Figure:
    """Annotations drawn on a box of their own colour keep a text colour readable on that box (a
    light box under the dark theme's white text was unreadable); the box is composited on the
    chart's background (dark or light) when it is see-through."""
    under = (14, 17, 23) if dark else (255, 255, 255)
    for a in fig.layout.annotations:
        box = _rgb(a.bgcolor) if a.bgcolor else None
        if box is None or (a.font and a.font.color):
            continue
        r, g, b, alpha = box
        mixed = [alpha * c + (1 - alpha) * u for c, u in zip((r, g, b), under)]
        a.font.color = "#111111" if luminance(*mixed) > 0.18 else "#f5f5f5"
    return fig


def titles_clear_ticks(fig: go.Figure) -> go.Figure:
    """Axis titles below (or beside) their tick labels, however long or slanted the labels are,
    and tick labels inside the figure (plotly's automargin)."""
    fig.update_xaxes(automargin=True, title_standoff=6, ticklabelstandoff=2)
    fig.update_yaxes(automargin=True, ticklabelstandoff=6)  # the '0' of x and of y apart at the corner
    return fig


def wrap_categories(fig: go.Figure) -> go.Figure:
    """Category labels of two words ('L6 26.2%') on two lines, so a narrow chart fits them side by
    side instead of slanting them into each other (single-axis bar charts; a crowded heatmap axis
    is left to plotly, which turns its labels upright)."""
    if (getattr(fig, "_grid_ref", None) is not None or fig.layout.xaxis.ticktext or fig.layout.xaxis.tickvals
            or any(t.type != "bar" for t in fig.data)):
        return fig
    cats = []
    for t in fig.data:
        x = getattr(t, "x", None) if "x" in t else None
        if x is None or not len(x) or not all(isinstance(v, str) for v in x):
            return fig
        cats += [v for v in x if v not in cats]
    if any(" " in c for c in cats):
        fig.update_xaxes(tickmode="array", tickvals=cats, ticktext=[c.replace(" ", "<br>", 1) for c in cats])
    return fig


def tidy(fig: go.Figure, dark: bool = False) -> go.Figure:
    """Every fix above, on a copy (the caller's figure is left as it was)."""
    out = go.Figure(fig)
    if getattr(fig, "_grid_ref", None) is not None:
        out._grid_ref = fig._grid_ref
    return readable_text(legend_below(titles_clear_ticks(wrap_categories(fit_subplot_titles(out)))), dark)


def _axis_ref(name: str) -> str:
    return name.replace("axis", "")  # 'xaxis2' -> 'x2'


def _drawn(trace, letter: str):
    """The numbers a scatter or bar trace draws along ``letter`` (x or y), error bars and a bar's
    base at 0 included; None for other trace types or categorical values (no range then)."""
    import numpy as np

    if trace.type not in ("scatter", "scattergl", "bar") or trace[letter] is None:
        return None
    try:
        v = np.asarray(trace[letter], dtype=float)
        out = [v]
        err = trace[f"error_{letter}"]
        if err.visible is not False and err.array is not None:
            plus = np.asarray(err.array, dtype=float)
            minus = np.asarray(err.arrayminus, dtype=float) if err.arrayminus is not None and err.symmetric is not True else plus
            out += [v + plus, v - minus]
    except (TypeError, ValueError):  # categories, or error arrays of another length
        return None
    if trace.type == "bar" and (trace.orientation or "v") == ("v" if letter == "y" else "h"):
        out.append(np.zeros(1))
    return np.concatenate([o.ravel() for o in out])


def shared_ranges(fig: go.Figure, letter: str = "y") -> dict[str, list[float]]:
    """Axis name -> the range of the group of axes it shares (``matches``) in ``fig``: the group's
    own range when set, else the span of everything its traces draw plus 5%, in log10 units on a
    log axis. What plotly's autorange gives the panels drawn together, so split panels keep it."""
    import numpy as np

    names = [k for k in fig.layout if re.fullmatch(f"{letter}axis\\d*", k)]
    root = {}
    for name in names:
        ref, seen = _axis_ref(name), set()
        while fig.layout[ref.replace(letter, f"{letter}axis", 1)].matches and ref not in seen:
            seen.add(ref)
            ref = fig.layout[ref.replace(letter, f"{letter}axis", 1)].matches
        root[name] = ref
    out = {}
    for ref in set(root.values()):
        group = [n for n in names if root[n] == ref]
        head = fig.layout[ref.replace(letter, f"{letter}axis", 1)]
        if len(group) < 2:
            continue
        if head.range is not None:
            out.update({n: list(head.range) for n in group})
            continue
        refs = {_axis_ref(n) for n in group}
        drawn = [_drawn(t, letter) for t in fig.data if (t[f"{letter}axis"] or letter) in refs]
        if not drawn or any(d is None for d in drawn):
            continue
        v = np.concatenate(drawn)
        v = np.log10(v[v > 0]) if head.type == "log" else v
        v = v[np.isfinite(v)]
        if not len(v):
            continue
        lo, hi = float(v.min()), float(v.max())
        pad = 0.05 * (hi - lo) or 0.05 * abs(hi) or 1.0
        out.update({n: [lo - pad, hi + pad] for n in group})
    return out


def split_panels(fig: go.Figure, panel_height: int = 380) -> list[go.Figure]:
    """One figure per subplot of a make_subplots figure with several columns (row by row), each
    with its panel's traces, axes, title and annotations; axes that were shared keep the common
    range of their row. Plain figures, single-column grids and image grids come back alone."""
    rows, cols = grid_shape(fig)
    if cols < 2:
        return [fig]
    titles = [a for a in fig.layout.annotations if _is_subplot_title(a)]
    ranges = shared_ranges(fig, "y")  # shared y axes: the row's common range, so stacked panels compare
    panels, legend_seen = [], set()
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            try:
                sub = fig.get_subplot(r, c)
            except Exception:  # noqa: BLE001 - an empty or non-xy cell of the grid
                sub = None
            if sub is None or not hasattr(sub, "xaxis"):
                continue
            xname, yname = sub.xaxis.plotly_name, sub.yaxis.plotly_name
            xref, yref = _axis_ref(xname), _axis_ref(yname)
            traces = [t for t in fig.data if (t.xaxis or "x") == xref and (t.yaxis or "y") == yref]
            if not traces:
                continue
            part = go.Figure()
            for t in traces:
                t = copy.deepcopy(t)
                t.update(xaxis="x", yaxis="y")
                if "showlegend" in t and t.showlegend is not False and t.name:
                    t.showlegend = t.name not in legend_seen
                    legend_seen.add(t.name)
                part.add_trace(t)
            layout = fig.layout.to_plotly_json()
            keep = {k: v for k, v in layout.items()
                    if not re.match(r"[xy]axis\d*$", k) and k not in ("annotations", "shapes", "title", "height")}
            part.update_layout(keep)
            for src, dst in ((xname, "xaxis"), (yname, "yaxis")):
                axis = fig.layout[src].to_plotly_json()
                for k in ("domain", "anchor", "matches", "scaleanchor", "overlaying", "showticklabels"):
                    axis.pop(k, None)
                if src in ranges:
                    axis.update(range=ranges[src], autorange=False)
                part.layout[dst] = axis
            xdom, ydom = fig.layout[xname].domain, fig.layout[yname].domain
            heading = [a.text for a in titles if xdom[0] <= a.x <= xdom[1] and abs(a.y - ydom[1]) < 0.05]
            for a in fig.layout.annotations:
                if a.xref in (xref, f"{xref} domain") or a.yref in (yref, f"{yref} domain"):
                    b = copy.deepcopy(a)
                    b.update(xref=b.xref.replace(xref, "x"), yref=b.yref.replace(yref, "y"))
                    part.add_annotation(b)
            for s in fig.layout.shapes:
                if s.xref in (xref, f"{xref} domain", "paper") and s.yref in (yref, f"{yref} domain", "paper"):
                    b = copy.deepcopy(s)
                    b.update(xref=b.xref.replace(xref, "x"), yref=b.yref.replace(yref, "y"))
                    part.add_shape(b)
            if not part.layout.yaxis.title.text and fig.layout["yaxis"].title.text:
                part.layout.yaxis.title.text = fig.layout["yaxis"].title.text  # shared: only the first had it
            if not part.layout.xaxis.title.text:
                shared = [fig.layout[k].title.text for k in fig.layout if k.startswith("xaxis") and fig.layout[k].title.text]
                part.layout.xaxis.title.text = max(shared, key=len) if shared else None
            top = [fig.layout.title.text] if fig.layout.title.text and not panels else []
            words = " ".join(re.sub(r"<br\s*/?>", " ", t) for t in top + [" · ".join(h for h in heading if h)] if t)
            lines = textwrap.wrap(words, 40)  # about 340 px of a 14 px title
            part.update_layout(title=dict(text="<br>".join(lines) or None, font=dict(size=14), y=1, yref="container",
                                          yanchor="top", pad=dict(t=8)),
                               margin=dict(t=24 + 20 * max(1, len(lines))), height=panel_height,
                               meta={**(layout.get("meta") or {}), "panel": [r, c]})
            panels.append(legend_below(part, width_px=340, height=panel_height))
    return panels or [fig]
