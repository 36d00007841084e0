"""LTHVP dashboard: ``streamlit run app.py``. The entry point is the frame around every page:
it sets up navigation and the sidebar's store / queue status, then runs the chosen page."""

import streamlit as st

from lthvp.ui import app_frame
from lthvp.ui import dashboard as db

st.set_page_config(page_title="LTHVP: sparsity vs prompting", page_icon=app_frame.favicon(), layout="wide")

page = st.navigation(app_frame.app_pages())

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
        counts = db.queue().counts()
    except ValueError as err:  # a damaged job queue: the results stay readable
        st.error(str(err))
        return
    active = counts["queued"] + counts["running"]
    st.caption(f"**Store** `{db.store_dir()}`  \n{len(db.results())} results"
               + (f" · {counts['running']} running, {counts['queued']} queued" if active else ""))


with st.sidebar:
    store_status()
    st.caption("Every control's value is in the URL: copy the address bar to share this view.")

st.session_state[app_frame.FRAME_KEY] = True  # tells the page it runs inside this frame
page.run()
