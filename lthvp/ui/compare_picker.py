"""Picking runs to compare (Streamlit): the Compare page's run list kept in its URL
(``/compare?hashes=h1,h2,...``), the picker on Run details, and the link under a box- or
lasso-selection of runs on the Sparsity page. The drawing lives in lthvp.ui.compare_views."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from lthvp.analysis.report import shots_label
from lthvp.ui.compare_views import MAX_RUNS, MIN_RUNS, link_value, parse_runs
from lthvp.ui.plots import METHOD_NAMES
from lthvp.ui.url_notice import named

PAGE = "pages/compare.py"
PICK_KEY, WRITTEN_KEY = "cmp_runs", "_cmp_written"
PARAM = "hashes"  # not "runs": Sparsity binds its *Every run* toggle to runs=, and Streamlit drops a bound key on leaving


def _st():
    import streamlit as st

    return st


def run_labels(df: pd.DataFrame) -> dict[str, str]:
    """{hash: 'hash · VP L3 1-shot s0 f1 · digits'} for every run of a results table, so a picker
    can be searched by the app's own words as well as by hash."""
    out = {}
    for h, method, level, arm, shots, seed, family, dataset in df[
            ["hash", "method", "level", "arm", "shots", "seed", "family", "dataset"]].itertuples(index=False):
        arm = "" if arm == "ticket" else f" {arm}"
        fam = "" if pd.isna(family) else f" f{int(family)}"
        out[h] = f"{h} · {METHOD_NAMES.get(method, method)} L{level}{arm} {shots_label(shots)} s{seed}{fam} · {dataset}"
    return out


def link_to_compare(hashes: Sequence[str], where=None, label: str | None = None) -> None:
    """A link to the comparison of ``hashes`` (2 to MAX_RUNS), or one line saying why there is none."""
    where = where or _st()
    n = len(hashes)
    if n > MAX_RUNS:
        where.warning(f"{n} runs selected; a comparison shows at most {MAX_RUNS}: select fewer.")
    elif n >= MIN_RUNS:
        where.page_link(PAGE, label=label or f"Compare these {n} runs", icon=":material/compare_arrows:",
                        query_params={PARAM: link_value(hashes)})


def picker(df: pd.DataFrame, shown: pd.DataFrame | None = None) -> None:
    """Run details: a multiselect of runs (the rows the search shows, plus those already picked)
    and the link that opens their comparison."""
    st = _st()
    labels = run_labels(df)
    picked = [h for h in st.session_state.get("cmp_pick", []) if h in labels]
    st.session_state["cmp_pick"] = picked
    offered = list(dict.fromkeys(picked + list((shown if shown is not None else df)["hash"])))
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    chosen = c1.multiselect(f"Compare runs (pick {MIN_RUNS}-{MAX_RUNS}; the search above narrows the list)", offered,
                            key="cmp_pick", format_func=labels.get, max_selections=MAX_RUNS,
                            placeholder="type a hash, VP, L3, s0 ...")
    link_to_compare(chosen, where=c2, label=f"Compare {len(chosen)} runs")


def selected_from_chart(event) -> list[str]:
    """The run hashes of a plotly selection (points carrying a hash first in their customdata)."""
    from lthvp.ui.dashboard import is_hash

    points = event.selection.points if event and getattr(event, "selection", None) else []
    hashes = [p["customdata"][0] for p in points
              if isinstance(p.get("customdata"), list) and p["customdata"] and is_hash(p["customdata"][0])]
    return list(dict.fromkeys(hashes))


def page_runs(df: pd.DataFrame) -> list[str]:
    """The Compare page's runs: read from the link when one is opened (ill-formed, unknown and
    repeated entries named in one line; more than MAX_RUNS refused), then kept in a multiselect
    whose order is the comparison's and whose value is written back to ``hashes=``."""
    st = _st()
    labels = run_labels(df)
    given = st.query_params.get_all(PARAM)
    raw = ",".join(given)
    opened = raw != st.session_state.get(WRITTEN_KEY)
    if opened:
        link = parse_runs(given, labels.keys())
        for line, show in ((link.refusal(), st.error), (link.notice(), st.warning)):
            if line:
                show(line)
                named(PARAM)  # the frame's link notice leaves this value to the line above
        st.session_state[PICK_KEY] = [] if link.refused else list(link.hashes[:MAX_RUNS])
    picked = st.multiselect(f"Runs to compare ({MIN_RUNS}-{MAX_RUNS}, in this order: A, B, C ...)", list(labels),
                            key=PICK_KEY, format_func=labels.get, max_selections=MAX_RUNS,
                            placeholder="type a hash, VP, L3, s0 ...")
    if picked:
        if raw != link_value(picked):
            st.query_params[PARAM] = link_value(picked)
        st.session_state[WRITTEN_KEY] = link_value(picked)
    elif opened:  # nothing usable in the link: keep it, so a reload shows the same notice
        st.session_state[WRITTEN_KEY] = raw
    else:  # the picker was emptied
        st.query_params.pop(PARAM, None)
        st.session_state[WRITTEN_KEY] = ""
    return picked
