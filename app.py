"""LTHVP dashboard: ``streamlit run app.py``. The entry point is the frame around every page:
it sets up navigation and the sidebar's store / queue status, then runs the chosen page."""

import streamlit as st

from lthvp.ui import app_frame
from lthvp.ui import browser_shell
from lthvp.ui import dashboard as db
from lthvp.ui import queue_panel
from lthvp.ui import url_notice

st.set_page_config(page_title="LTHVP: sparsity vs prompting", page_icon=app_frame.favicon(), layout="wide")

pages = app_frame.app_pages()
page = st.navigation(pages)
browser_shell.install_history(st.sidebar)  # before the page writes its URL: one history entry per view

try:
    SHOWN_VERSION = db.store().version  # the store version this page was drawn from
except ValueError as err:  # a damaged store: say how to recover, draw nothing from it
    st.error(str(err))
    st.stop()


@st.fragment(run_every=5)
def store_status():
    """Queue counts polled every 5 s (one cheap read of the store's version counter); when new
    results arrive the whole page is redrawn (widget values live in the URL, so they stay)."""
    if db.store().version != SHOWN_VERSION:
        st.rerun(scope="app")
    try:
        version = db.queue().version  # the Run page's queue redraws the app when it sees another version
        counts = db.queue().counts()
    except ValueError as err:  # a damaged job queue: the results stay readable
        st.error(str(err))
        return
    st.session_state[queue_panel.SHOWN_VERSION] = version
    active = counts["queued"] + counts["running"]
    st.caption(f"**Store** `{db.store_dir()}`  \n{len(db.results())} results"
               + (f" · {queue_panel.counts_text(counts)}" if active else ""))


with st.sidebar:
    store_status()
    st.caption("Every control's value is in the URL: copy the address bar to share this view.")
    browser_shell.theme_switch(st.sidebar, [p.url_path for p in pages])

app_frame.unknown_path_notice(pages)
notice = st.empty()  # above the page: the link values it did not keep
url_notice.begin()
st.session_state[app_frame.FRAME_KEY] = True  # tells the page it runs inside this frame
try:
    page.run()
finally:
    url_notice.finish(notice)
