"""One notice for every link value a page did not keep, and for a path that is no page.

A link value is one the app did not write itself: every value of a session's first run, and later
a value that differs from the URL the previous run left (st.page_link / st.switch_page with query
parameters, a bound widget's own URL write). A value the run dropped or changed is named: a
widget's option that does not exist (``metric=bogus``, ``view=random``), a level that is not
there. Code that names its own corrections (``linked``) calls :func:`named` so a value is named once.
"""

from __future__ import annotations

from urllib.parse import urlparse

from lthvp.ui.text import plain

SEEN = "_lthvp_url_seen"  # the URL the previous run left, {key: [values]}
GIVEN = "_lthvp_url_given"  # this run's link values
NAMED = "_lthvp_url_named"  # keys already named this run


def _url() -> dict[str, list[str]]:
    import streamlit as st

    return {k: st.query_params.get_all(k) for k in st.query_params}


def begin() -> None:
    """Note this run's link values (call before the page runs)."""
    import streamlit as st

    now, seen = _url(), st.session_state.get(SEEN)
    st.session_state[GIVEN] = {k: v for k, v in now.items() if seen is None or seen.get(k) != v}
    st.session_state[NAMED] = set()


def named(key: str) -> None:
    """``key``'s link value was named by the code that read it."""
    import streamlit as st

    st.session_state.setdefault(NAMED, set()).add(key)


def lost_values(given: dict[str, list[str]], final: dict[str, list[str]], skip=()) -> list[str]:
    """One phrase per link value the run did not keep: left out, or replaced by another value."""
    out = []
    for key, values in given.items():
        kept = final.get(key)
        if key in skip or kept == values:
            continue
        shown = f"{plain(key)}={plain(', '.join(values) or '(empty)')}"
        if kept is None:
            out.append(f"{shown} (left out)")
        else:
            out.append(f"{shown} (shown as {plain(', '.join(kept))})")
    return out


def finish(slot) -> None:
    """Name, in ``slot`` (a placeholder above the page), every link value this run did not keep,
    and remember the URL the run leaves (call after the page ran, also when it stopped early)."""
    import streamlit as st

    final = _url()
    lost = lost_values(st.session_state.get(GIVEN, {}), final, st.session_state.get(NAMED, set()))
    if lost:
        slot.warning("This link's " + "; ".join(lost) + ": not available on this page, so the page "
                     "shows its own choice.", icon=":material/link_off:")
    st.session_state[SEEN] = final


def unknown_path(url: str | None, page_paths: list[str], base: str = "") -> str | None:
    """The path of ``url`` when it names no page of the app (``/overview``; the main page is ``/``),
    else None. ``base`` is the server's baseUrlPath."""
    if not url:
        return None
    path = urlparse(url).path.strip("/")
    base = base.strip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base):].strip("/")
    return None if path in ("", *page_paths) else path
