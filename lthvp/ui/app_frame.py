"""The app's frame: its pages, the guard that keeps deep links framed, the tab icon, and the notice
for a path that is no page.

Separate from :mod:`lthvp.ui.dashboard` (data helpers for pages) because app.py and every page
import it before anything else runs.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def favicon():
    """The tab icon, drawn here so the browser never fetches one from a font host (offline servers):
    a 4x4 weight grid with some weights pruned."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((0, 0, 31, 31), radius=6, fill=(31, 119, 180, 255))
    kept = {0, 2, 5, 7, 8, 11, 13, 14}
    for i in range(16):
        x, y = 4 + 7 * (i % 4), 4 + 7 * (i // 4)
        draw.rectangle((x, y, x + 4, y + 4), fill=(255, 255, 255, 255) if i in kept else (255, 255, 255, 60))
    return img


FRAME_KEY = "lthvp_frame_ran"  # set by app.py in every run it frames


def app_pages() -> list:
    """The dashboard's pages (app.py's navigation), in sidebar order. Each file is named as its URL
    path (``pages/run-detail.py`` for ``/run-detail``): the first deep link on a fresh server is
    routed by Streamlit's file-name rule before :func:`ensure_frame` runs, and a mismatch showed a
    "Page not found" dialog over the right page."""
    import streamlit as st

    return [st.Page(f"pages/{name}.py", title=title, icon=icon, url_path=url, default=url == "overview")
            for name, title, icon, url in (
                ("overview", "Overview", ":material/dashboard:", "overview"),
                ("sparsity", "Sparsity curves", ":material/show_chart:", "sparsity"),
                ("calibration", "Calibration", ":material/balance:", "calibration"),
                ("effects", "Effects", ":material/functions:", "effects"),
                ("subpopulations", "Subpopulations", ":material/groups:", "subpopulations"),
                ("run-detail", "Run details", ":material/search:", "run-detail"),
                ("compare", "Compare runs", ":material/compare_arrows:", "compare"),
                ("prompts", "Prompts", ":material/image:", "prompts"),
                ("run", "Run", ":material/play_arrow:", "run"),
                ("bundles", "Bundles", ":material/inventory_2:", "bundles"))]


def ensure_frame() -> None:
    """Make a deep link work on a freshly started server, with public API only.

    Streamlit (1.64) treats an entry point with a ``pages/`` folder beside it as a legacy multipage
    app until some session calls ``st.navigation``: the first visitor of ``/sparsity`` gets
    ``pages/sparsity.py`` alone, without app.py's frame. The supported way out is that call itself
    (``st.navigation`` leaves legacy mode for the process): a page that runs without the frame
    declares the app's navigation and reruns, and app.py then frames and routes the request. Under
    AppTest pages run alone by design (AppTest re-enters legacy mode before every run)."""
    import streamlit as st

    from streamlit import config  # AppTest patches config.get_option itself (st.get_option is a copy)

    if st.session_state.pop(FRAME_KEY, False) or config.get_option("global.appTest"):
        return
    st.set_page_config(page_icon=favicon())  # first, or the page's :material: icon is fetched from a font host
    st.navigation(app_pages(), position="hidden")
    st.rerun()


def unknown_path_notice(pages: list) -> None:
    """Say on the page when the browser asked for a path that is no page (Streamlit then runs the
    main page and only logs it), with a link to the main page."""
    import streamlit as st

    from lthvp.ui.text import plain
    from lthvp.ui.url_notice import unknown_path

    path = unknown_path(getattr(st.context, "url", None), [p.url_path for p in pages],
                        st.get_option("server.baseUrlPath") or "")
    if path is None:
        return
    main = next((p for p in pages if not p.url_path), pages[0])  # the default page lives at the root
    st.warning(f"There is no page /{plain(path)} in this app: this is the main page ({plain(main.title)}).",
               icon=":material/travel_explore:")
    st.page_link(main, label=f"Main page: {main.title}", icon=":material/home:")
