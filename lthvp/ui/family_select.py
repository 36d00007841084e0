"""Which ticket families a page shows. Aggregates pool numbered families with the family as the
unit and never pool the legacy v1 study with them; views that put single runs side by side take
them from one family, since runs of different families are different tickets."""

from __future__ import annotations

import pandas as pd

from lthvp.analysis.pairing import family_keys, replicated
from lthvp.ui.linked_widgets import linked


def _family_options(df: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    keys = pd.Series(family_keys(df["family"]) if "family" in df else ["legacy"] * len(df), index=df.index)
    return keys, sorted(set(keys), key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0))


def several_families(df: pd.DataFrame) -> bool:
    """Whether ``df`` holds runs of more than one family (a page lays out a family picker only then)."""
    return len(_family_options(df)[1]) > 1


def default_choice(df: pd.DataFrame) -> str:
    """The sidebar's default family choice: "legacy" where the legacy study holds most of the runs
    (a store upgraded from v1 with a few v2 runs), else "all" numbered families."""
    keys, fams = _family_options(df)
    return "legacy" if "legacy" in fams and (keys == "legacy").sum() > (keys != "legacy").sum() else "all"


def family_filter(df: pd.DataFrame) -> pd.DataFrame:
    """Sidebar choice of one ticket family, or all numbered families (aggregated with family as the
    unit). The legacy study (v1: another recipe and protocol) is never pooled with them; it is the
    default only when it holds most of the runs (a store upgraded from v1 with a few v2 runs)."""
    import streamlit as st

    keys, fams = _family_options(df)
    if len(fams) < 2:
        return df
    numbered = [f for f in fams if f.isdigit()]
    choice = linked(st.sidebar, "selectbox", "Ticket family", ["all"] + fams, "family", default_choice(df),
                    format_func=lambda v: ("all ticket families (family = unit)" if v == "all" else
                                           f"family {v}" if v.isdigit() else "legacy study (v1, one family)"),
                    help="'all' pools the numbered families " + f"({', '.join(numbered)})"
                         + ("; the legacy v1 study is never pooled with them" if "legacy" in fams else ""))
    return replicated(df) if choice == "all" else df[keys == choice]


def single_family(df: pd.DataFrame, where) -> pd.DataFrame:
    """The rows of one ticket family, for views that draw single runs side by side (reliability
    panels, prompts per level): runs of different families are different tickets, never mixed."""
    keys, fams = _family_options(df)
    if len(fams) < 2:
        return df
    choice = linked(where, "selectbox", "Family", fams, "one_family", fams[0],
                    format_func=lambda v: f"family {v}" if v.isdigit() else v,
                    help="single runs are shown from one ticket family; curves aggregate over all of them")
    return df[keys == choice]
