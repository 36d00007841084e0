"""Overview: what the store holds, the headline comparison, where to go next."""

import streamlit as st

from lthvp.analysis import verdicts
from lthvp.ui import app_frame
from lthvp.ui import charts
from lthvp.ui import dashboard as db
from lthvp.ui import plots, study_views

app_frame.ensure_frame()

st.title("Lottery tickets × visual prompting")
st.caption("What does sparsity cost a frozen pre-trained model transferred by visual prompting (VP) "
           "versus linear probing (LP), in accuracy and calibration, as target data shrinks?")

if not st.session_state.get("seed_banner_shown"):  # what the shipped bundles added: once per browser session
    st.session_state["seed_banner_shown"] = True
    for msg in db.seed_messages():
        st.success(f"Shipped results: {msg}", icon=":material/inventory_2:")

df = db.results_or_stop()

c = st.columns(6)
c[0].metric("runs", len(df))
c[1].metric("datasets", df["dataset"].nunique())
c[2].metric("methods", ", ".join(plots.METHOD_NAMES.get(m, m) for m in sorted(df["method"].unique(), reverse=True)))
c[3].metric("levels", df["level"].nunique(), help="IMP levels (sparsity) with at least one result")
c[4].metric("shot counts", df["shots"].nunique())
c[5].metric("seeds", df["seed"].nunique())

left, right = st.columns(2)
ds = db.dataset_select(df, left)
shots = db.shot_select(df[df["dataset"] == ds], right)

answer = verdicts.headline(db.effects_table("accuracy", ds, df))
if answer:  # generated from the numbers, never user text
    st.info(answer, icon=":material/lightbulb:")
    st.page_link("pages/effects.py", label="Effects: every claim with its interval, adjusted p and MDE",
                 icon=":material/functions:", query_params={"ds": ds})

charts.show(plots.headline_figure(df, ds, shots), "headline")
st.caption(f"{plots.AGGREGATE_NOTE}. Dashed: random pruning at the same sparsity. Remaining weights count all "
           "prunable weights (conv + linear).")

st.subheader("What the store holds")
st.dataframe(plots.summary(df), hide_index=True, width="stretch")
study_views.study_panel(df)  # the shipped (or picked) study: design and the code versions behind it

st.subheader("Where to go next")
n1, n2, n3 = st.columns(3)
n1.page_link("pages/sparsity.py", label="Sparsity curves: every metric vs remaining weights",
             icon=":material/show_chart:", query_params={"ds": ds})
n2.page_link("pages/calibration.py", label="Calibration: reliability diagrams per level",
             icon=":material/balance:", query_params={"ds": ds})
n3.page_link("pages/prompts.py", label="Prompts: learned borders and label mappings",
             icon=":material/image:", query_params={"ds": ds})
n1.page_link("pages/run.py", label="Run: fill in missing cells", icon=":material/play_arrow:")
n2.page_link("pages/bundles.py", label="Bundles: share or import results", icon=":material/inventory_2:")
