"""A study on a page: which study is shown (sidebar pick, in the URL), whether only its planned
runs are (the "Study runs only" toggle, on by default), how many runs were added to its cells
later, and its design and code versions (lthvp.results.studies)."""

from __future__ import annotations

import pandas as pd

from lthvp.results import studies as S
from lthvp.ui import dashboard as db
from lthvp.ui.text import plain

CELL = ["dataset", "method", "arm", "shots", "level"]


def registry() -> tuple[list[S.Study], list[str]]:
    """The store's studies and one line per damaged registry entry."""
    return S.studies(db.store())


def _key(study: S.Study) -> str:
    return study.digest[:12]


NONE = "all"  # the sidebar's "no study: every run" choice


def pick(found: list[S.Study]) -> S.Study | None:
    """The study the sidebar shows (``study=`` in the URL): default the latest shipped one; with no
    shipped study, every run (a bundle a user imported is one pick away, never forced on a page)."""
    import streamlit as st

    if not found:
        return None
    by_key = {_key(s): s for s in found}
    shipped = [s for s in found if s.source == "shipped"]
    key = db.linked(st.sidebar, "selectbox", "Study", list(by_key) + [NONE], "study",
                    _key(shipped[-1]) if shipped else NONE,
                    format_func=lambda k: "none: every run" if k == NONE else f"{by_key[k].name} · {k[:8]}",
                    help="a study is an imported bundle (shipped or yours): its planned runs and design")
    return by_key.get(key)


def added_later(df: pd.DataFrame, study: S.Study) -> pd.DataFrame:
    """Runs in the study's cells (dataset, method, arm, shots, level) that are not its planned runs."""
    members = df["hash"].isin(set(study.members))
    cells = set(map(tuple, df.loc[members, CELL].astype(str).to_numpy()))
    in_cells = pd.Series([tuple(r) in cells for r in df[CELL].astype(str).to_numpy()], index=df.index, dtype=bool)
    return df[in_cells & ~members]


def study_scope(df: pd.DataFrame) -> tuple[pd.DataFrame, S.Study | None]:
    """The rows a page shows: the picked study's planned runs (default), or every run with
    ``in_study`` marking the study's own, when "Study runs only" is off. A store without studies
    (runs put directly) is shown whole. Says how many runs the other choice would add."""
    import streamlit as st

    found, problems = registry()
    for line in problems:
        st.warning(f"Study registry: {plain(line, 300)}", icon=":material/warning:")
    study = pick(found)
    if study is None:
        return df.assign(in_study=True), None
    only = st.sidebar.toggle("Study runs only", value=True, key="study_only", bind="query-params",
                             help="on: the study's planned runs only; off: every stored run, runs added after the "
                                  "study drawn as stars and unbalanced cells ringed")
    later = added_later(df, study)
    out = df.assign(in_study=df["hash"].isin(set(study.members)))
    if only:
        if len(later):
            st.info(f"{len(later)} run{'s' if len(later) != 1 else ''} added to this study's cells after it "
                    f"{'is' if len(later) == 1 else 'are'} not shown (not among its planned runs). Turn off "
                    "**Study runs only** in the sidebar to include them, marked ★.", icon=":material/filter_alt:")
        return out[out["in_study"]], study
    extra = int((~out["in_study"]).sum())
    if extra:
        st.caption(f"All runs: the study's planned runs and {extra} other{'s' if extra != 1 else ''} "
                   f"({len(later)} in its cells, ★ with *Every run*).")
    return out, study


def unequal_warning(agg: pd.DataFrame, where: str = "ringed in the chart") -> None:
    """A visible warning naming the cells of ``agg`` (plots.with_replication) with unequal replication."""
    import streamlit as st

    odd = agg[~agg["balanced"].fillna(True).astype(bool)] if "balanced" in agg else agg.iloc[:0]
    if odd.empty:
        return
    from lthvp.analysis.report import shots_label

    names = {"vp": "VP", "map": "mapping only", "lp": "LP"}
    lines = [f"{names.get(r.method, r.method)} {shots_label(r.shots)} L{r.level}"
             + ("" if r.arm == "ticket" else f" {r.arm}") + f": {r.replication}" for r in odd.head(6).itertuples()]
    st.warning(f"Unequal replication in {len(odd)} cell{'s' if len(odd) != 1 else ''}"
               + (f" ({where})" if where else "") + ": "
               + plain("; ".join(lines), 900) + ("; …" if len(odd) > 6 else "")
               + ". Their means weigh families unlike the other cells'.", icon=":material/warning:")


def study_only() -> bool:
    """Whether the sidebar's "Study runs only" toggle is on (its default) on this run of the page."""
    import streamlit as st

    return bool(st.session_state.get("study_only", True))


def scope_caption(study: S.Study | None, df: pd.DataFrame, what: str = "The analysis") -> None:
    """One line under a page's title saying which runs its numbers come from."""
    import streamlit as st

    if study is None:
        return
    name = plain(study.name, 80)
    if study_only():
        st.caption(f"{what} uses only the planned runs of study {name} ({len(df):,} runs); runs added to its "
                   "cells later are left out (sidebar: **Study runs only**).")
    else:
        extra = int((~df["in_study"]).sum()) if "in_study" in df else 0
        st.caption(f"{what} uses every stored run: study {name}'s planned runs and {extra} other"
                   f"{'s' if extra != 1 else ''} (marked ★ where runs are listed).")


def cell_warning(df: pd.DataFrame, metric: str, where: str = "") -> pd.DataFrame:
    """The replication (lthvp.analysis.replicates) of every cell of ``df`` for ``metric``; warns,
    naming them, about cells whose families do not hold the same seeds once each."""
    from lthvp.analysis import replicates

    reps = replicates.replication_table(df, metric)
    unequal_warning(reps, where)
    return reps


def marked(df: pd.DataFrame, column: str = "seed") -> dict:
    """value -> label for a picker over ``column``: a value only runs added after the study hold is starred."""
    if "in_study" not in df or df["in_study"].all():
        return {}
    held = df.groupby(df[column].astype(str))["in_study"].any()
    return {k: f"{k} ★ added after the study" for k, v in held.items() if not v}


def replication_hover(fig, reps: pd.DataFrame) -> None:
    """Put each (method, level) bar's true replication (``reps``: replicates.replication_table) in
    its hover, in place of a bare run count."""
    from lthvp.ui.plots import METHOD_NAMES

    method_of = {v: k for k, v in METHOD_NAMES.items()}
    text = {(str(r.method), int(r.level)): r.replication for r in reps.itertuples()}
    for trace in fig.data:
        method = method_of.get(trace.name, trace.name)
        trace.customdata = [text.get((method, int(str(x).split()[0][1:])), "") for x in trace.x]
        trace.hovertemplate = "%{x}: %{y:.3f}<br>%{customdata}<extra></extra>"


_EFFECTS = None


def _effects_cache():
    """lthvp.analysis.effects over one study's planned runs, cached per store version and choice."""
    global _EFFECTS
    if _EFFECTS is None:
        import streamlit as st

        @st.cache_data(show_spinner="Computing effects over the study's runs…", max_entries=16)
        def compute(directory: str, version: int, metric: str, dataset: str, families: tuple, digest: str):
            from lthvp.analysis.effects import effects
            from lthvp.analysis.pairing import family_keys

            (study,) = [s for s in registry()[0] if s.digest == digest]
            df = db.results()
            keep = df["hash"].isin(set(study.members)) & pd.Series([f in families for f in family_keys(df["family"])], index=df.index)
            return effects(df[keep], metric, dataset)

        _EFFECTS = compute
    return _EFFECTS


def effects_table(metric: str, dataset: str, shown: pd.DataFrame, study: S.Study | None) -> pd.DataFrame:
    """The Effects contrasts over the runs a page shows: the study's planned runs with "Study runs
    only" on, else every stored run of the shown families (lthvp.ui.dashboard.effects_table)."""
    if study is None or not study_only():
        return db.effects_table(metric, dataset, shown)
    from lthvp.analysis.pairing import family_keys

    families = tuple(sorted(set(family_keys(shown["family"]))))
    return _effects_cache()(str(db.store_dir()), db.store().version, metric, dataset, families, study.digest)


def design_rows(study: S.Study, df: pd.DataFrame) -> pd.DataFrame:
    """The study's design as (what, value) rows, with how many of its runs the store still holds."""
    d = study.design
    stored = int(df["hash"].isin(set(study.members)).sum()) if "hash" in df else 0
    rows = [("bundle", study.name), ("sha256", study.digest), ("imported", f"{study.imported} ({study.source})"),
            ("planned runs", f"{d.runs:,} ({stored:,} in the store now)"), ("datasets", ", ".join(d.datasets)),
            ("methods", ", ".join(d.methods)), ("arms", ", ".join(d.arms)),
            ("ticket families", ", ".join(d.families)), ("levels", ", ".join(f"L{v}" for v in d.levels)),
            ("shots", ", ".join(d.shots)), ("seeds", ", ".join(str(v) for v in d.seeds))]
    rows += [(f"protocol: {m} {s}" + ("" if n == d.runs else f" ({n} runs)"), p) for m, s, p, n in d.protocols]
    return pd.DataFrame(rows, columns=["what", "value"])


_PICK = object()  # study_panel's default: the sidebar's pick (a page that already picked passes its study)


def study_panel(df: pd.DataFrame, study=_PICK, expanded: bool = False) -> None:
    """The study's design and the code versions (provenance git commits) behind its runs; nothing
    without a study."""
    import streamlit as st

    if study is _PICK:
        study = pick(registry()[0])
    if study is None:
        return
    versions = study.design.code_versions
    with st.expander(f"Study {plain(study.name, 80)}: {study.design.runs:,} planned runs from "
                     f"{len(versions)} code version{'s' if len(versions) != 1 else ''}", expanded=expanded):
        st.dataframe(design_rows(study, df), hide_index=True, width="stretch")
        st.caption("Code versions behind the study (the git commit each run's provenance records):")
        st.dataframe(pd.DataFrame(versions, columns=["git commit", "runs"]), hide_index=True, width="stretch")
