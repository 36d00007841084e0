"""What the app does in the browser itself: browser history (one entry per view change, Back and
Forward reopen the view as its link) and the light/dark theme switch.

Streamlit 1.64 pushes a history entry for every query-string write the script makes (a page
change plus its widgets' writes: about six entries), keeps a bound widget's change out of the
history (replaceState), and on a same-page Back reruns with the query string the server last set
rather than the one the browser went back to (streamlit/streamlit#13963, fixed upstream after
1.64), so Back could not restore a widget. This script, run once per tab, sets the rule instead:

- the first URL change after a user gesture (pointer or key, trusted events only) makes one new
  entry; every other URL change (the script completing or correcting the URL, the same run's
  further writes) replaces the current entry;
- Back / Forward to another URL (not a jump to an in-page #anchor) reloads the page, so the
  entry is opened exactly as a shared link is: every widget from the URL.

The theme switch stores Streamlit's own theme choice for every page path of the app (Streamlit
keys it by the path a tab was opened on) and reloads, so the app and the charts (drawn with the
theme Streamlit reports, :mod:`lthvp.ui.charts`) come back in it.
"""

from __future__ import annotations

import json

HISTORY_JS = """
<script>
(() => {
  if (window.__lthvpHistory) return;
  window.__lthvpHistory = true;
  const H = window.history, push = H.pushState.bind(H), replace = H.replaceState.bind(H);
  const key = (u) => { const x = new URL(u, window.location.href); return x.pathname + x.search; };
  let armed = false, leaving = false, here = key(window.location.href);
  const arm = (e) => { if (e.isTrusted) armed = true; };
  window.addEventListener('pointerdown', arm, true);
  window.addEventListener('keydown', arm, true);
  const write = (state, title, url) => {
    if (leaving) return;
    if (url === undefined || url === null) { replace(state, title); return; }
    const next = key(url);
    if (next === here) { replace(state, title, url); return; }
    if (armed) { armed = false; push(state, title, url); } else { replace(state, title, url); }
    here = next;
  };
  H.pushState = write;
  H.replaceState = write;
  window.addEventListener('popstate', (e) => {
    if (key(window.location.href) === here) return;  // an in-page #anchor: nothing to reopen
    e.stopImmediatePropagation();  // Streamlit 1.64 would rerun with the old query string
    leaving = true;
    window.location.reload();
  }, true);
})();
</script>
"""


def theme_js(theme: str, page_paths: list[str]) -> str:
    """A script that makes ``theme`` ("Light" / "Dark") Streamlit's choice on every page path of the
    app (the root and each page's ``url_path``) and reloads the tab."""
    return f"""
<script>
(() => {{
  const pages = {json.dumps(page_paths)}, theme = {json.dumps(theme)};
  let path = window.location.pathname;
  for (const p of pages) {{ if (p && path.endsWith('/' + p)) {{ path = path.slice(0, -p.length); break; }} }}
  if (!path.endsWith('/')) path += '/';
  for (const p of [''].concat(pages)) {{
    window.localStorage.setItem('stActiveTheme-' + path + p + '-v2', JSON.stringify(theme));
  }}
  window.location.reload();
}})();
</script>
"""


def install_history(where) -> None:
    """Put the history script in ``where`` (a container drawn early in every run, before the
    page writes its URL); it runs once per tab."""
    where.html(HISTORY_JS, unsafe_allow_javascript=True, width="content")


def theme_switch(where, page_paths: list[str]) -> None:
    """A dark-theme switch (a viewer preference, kept in the browser and out of shared links).
    It shows the theme the browser reports; flipping it stores the other one and reloads."""
    import streamlit as st

    dark = getattr(getattr(st.context, "theme", None), "type", None) == "dark"
    picked = where.toggle("Dark theme", value=dark, key="lthvp_dark",
                          help="the app and its charts; kept in this browser, not in links")
    if picked != dark:
        where.html(theme_js("Dark" if picked else "Light", page_paths), unsafe_allow_javascript=True, width="content")
