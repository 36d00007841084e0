"""The app's first open of a store: the shipped bundles it lacks are imported (1,260 results take
seconds) under a visible progress message, once per store and server process, and what was added
is kept for the session that watched it (the Overview's banner), never shown to later sessions."""

from __future__ import annotations

import threading

from lthvp.results.seeding import added_count, pending, seed_store
from lthvp.results.store import ResultStore

SESSION_KEY = "_lthvp_seeded"  # this session's seeding messages
_LOCK = threading.Lock()
_DONE: set[str] = set()  # stores this process has seeded


def seed_with_progress(directory: str) -> None:
    """Import the shipped bundles ``directory``'s store lacks, with a status box in the page while
    it runs (removed when done) and a toast saying how many results were added."""
    if directory in _DONE:
        return
    import streamlit as st

    with _LOCK:  # a second session waits here, then finds nothing left to do
        todo = [] if directory in _DONE else pending(ResultStore(directory))
        if todo:
            n = sum(c or 0 for _, c in todo)
            box = st.empty()
            with box.status(f"Importing {n:,} shipped results ({', '.join(p.name for p, _ in todo)}) into this "
                            "store: once per store, a few seconds…", expanded=True) as status:
                said = seed_store(ResultStore(directory), progress=status.write)
            box.empty()
            st.session_state[SESSION_KEY] = said
            if added := sum(added_count(m) for m in said):
                st.toast(f"Imported {added:,} shipped results into this store.", icon=":material/inventory_2:")
        _DONE.add(directory)


def banner_messages(opened: list[str]) -> list[str]:
    """What the Overview's banner says: results the shipped bundles added in this session (none
    when nothing was added), and bundles that could not be imported (``opened``: the messages of
    the cached open)."""
    import streamlit as st

    here = [m for m in st.session_state.get(SESSION_KEY, []) if added_count(m)]
    failed = [m for m in opened if m.startswith("could not import")]
    return here + [m for m in failed if m not in here]
