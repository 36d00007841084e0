"""One way to put a figure on a page: the plotly chart (its colours following the app's light or dark
theme, a camera button that saves an SVG) plus a PNG download rendered only when clicked, so a
page never waits for the headless browser that draws the PNG (kaleido + the system Chromium).
Every figure passes :func:`lthvp.ui.chart_layout.tidy` on its way; one with several panels per row
is also drawn one panel per chart, and CSS shows that version instead below 700 px (a phone)."""

from __future__ import annotations

import importlib.util
import shutil

from lthvp.ui import chart_layout

PNG_WIDTH = 1200  # px before scale: a readable figure on a slide or in a paper draft
PNG_SCALE = 2
NARROW_PX = 700  # below this viewport width a figure's panels are drawn one per row
STACK_CSS = (f"<style>@media (max-width: {NARROW_PX}px) {{ [class*='st-key-lthvp_wide_'] {{ display: none; }} }}"
             f"@media (min-width: {NARROW_PX + 1}px) {{ [class*='st-key-lthvp_narrow_'] {{ display: none; }} }}</style>")


def _st():
    import streamlit as st

    return st


def chart_theme() -> str | None:
    """Charts keep their own light styling (theme=None) unless the app is dark (the browser's
    preference or the sidebar's switch); then Streamlit's theme-aware template redraws their
    background and text (explicit colours stay)."""
    theme = getattr(_st().context, "theme", None)
    return "streamlit" if getattr(theme, "type", None) == "dark" else None


def plot_config(name: str) -> dict:
    """Every chart's toolbar: the camera button saves an SVG (vector, for papers) named after the chart."""
    return {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "filename": f"lthvp_{name}", "scale": 2}}


def png_missing() -> str | None:
    """Why PNG export cannot run on this server (None when it can)."""
    if importlib.util.find_spec("kaleido") is None:
        return "PNG export needs the kaleido package (pip install -r requirements.txt)"
    if not any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "chrome")):
        return "PNG export needs Chromium or Chrome on the server (e.g. apt-get install chromium)"
    return None


def png_bytes(fig, width: int | None = PNG_WIDTH, scale: float = PNG_SCALE) -> bytes:
    """The figure as PNG, drawn in light colours (what a paper or slide wants) at a fixed width;
    figures that size themselves (image grids) keep their own width when ``width`` is None."""
    out = fig.to_dict()  # a copy: the figure on the page keeps its size
    import plotly.graph_objects as go

    copy = go.Figure(out)
    if width is not None and not copy.layout.width:
        copy.update_layout(width=width)
    return copy.to_image(format="png", scale=scale)


def _app_test() -> bool:
    """Under AppTest (no screen, so no narrow one) a page draws each figure once, in page order."""
    from streamlit import config

    return bool(config.get_option("global.appTest"))


def _has_points(event) -> bool:
    try:
        return bool(event and event.selection and event.selection.points)
    except (AttributeError, KeyError, TypeError):
        return False


def show(fig, key: str, where=None, png_width: int | None = PNG_WIDTH, **chart_args):
    """Draw ``fig`` in ``where`` (a container; the page by default) with a "PNG" download under it.
    Returns what ``st.plotly_chart`` returns (the selection event when ``on_select`` is given)."""
    where = where or _st()
    theme = chart_theme()
    shown = chart_layout.tidy(fig, dark=theme is not None)
    panels = [shown] if _app_test() else chart_layout.split_panels(shown)
    if len(panels) > 1:  # the whole figure on wide screens, one panel per row on narrow ones
        where.html(STACK_CSS)
        wide, narrow = where.container(key=f"lthvp_wide_{key}"), where.container(key=f"lthvp_narrow_{key}")
    else:
        wide = narrow = where
    event = wide.plotly_chart(shown, key=key, theme=theme, config=plot_config(key), **chart_args)
    if len(panels) > 1:
        for i, part in enumerate(panels):
            picked = narrow.plotly_chart(chart_layout.readable_text(part, theme is not None), key=f"{key}__panel{i}",
                                         theme=theme, config=plot_config(key), **chart_args)
            if _has_points(picked) and not _has_points(event):
                event = picked  # a point clicked on a stacked panel counts as on the figure
    reason = png_missing()
    if reason is None:
        where.download_button("PNG", data=lambda: png_bytes(fig, png_width), file_name=f"lthvp_{key}.png",
                              mime="image/png", on_click="ignore", key=f"png_{key}", icon=":material/download:",
                              help="the figure as a PNG image (light background, 2x resolution); the chart's "
                                   "camera button saves an SVG")
    else:
        where.caption(reason)
    return event
