"""Compare 2-6 runs: metrics side by side, the config diff, training curves and reliability curves
overlaid, reliability diagrams and prompts side by side. The run list lives in the URL
(``/compare?hashes=h1,h2,...``), so a comparison is a link."""

import pandas as pd
import streamlit as st

from lthvp.results.config_diff import config_diff
from lthvp.ui import app_frame
from lthvp.ui import charts
from lthvp.ui import compare_picker, compare_views
from lthvp.ui import dashboard as db
from lthvp.ui.prompt_plots import PROMPT_VIEWS
from lthvp.ui.text import plain

app_frame.ensure_frame()

HIGHLIGHT = "background-color: #ffd54f; color: #1a1a1a; font-weight: 600"  # readable in light and dark themes


st.title("Compare runs")
df = db.results()
if df.empty:
    db.empty_state()
    st.stop()
picked = compare_picker.page_runs(df)
if len(picked) < compare_views.MIN_RUNS:
    st.info(f"Pick {compare_views.MIN_RUNS} to {compare_views.MAX_RUNS} runs above, select several on Run details, "
            "or box-select runs on Sparsity curves with *Every run* on.")
    st.stop()

records = [db.record(h) for h in picked]
runs = compare_views.lettered(records)
letters = [letter for letter, _, _ in runs]
st.caption("This comparison's link (order kept: A, B, C ...):")
st.code(f"/compare?hashes={compare_views.link_value(picked)}", language=None)

summary = compare_views.summary_table(records)
summary["hash"] = [f"run-detail?hash={h}" for h in summary["hash"]]
st.dataframe(summary, hide_index=True, width="stretch", column_config={
    "hash": st.column_config.LinkColumn("hash", display_text=r"hash=(.*)", help="open the run's own page")})
st.caption("Accuracy and calibration errors in %; differences from run A in percentage points.")

st.subheader("Config diff")
diff = config_diff(records)
if diff.differing:
    st.caption(f"{len(diff.differing)} field(s) differ: {plain(', '.join(diff.differing_fields), 600)}. "
               "Highlighted: values that differ from run A's.")
    differing = compare_views.diff_frame(diff.differing, letters)
    marks = [("",) + tuple(HIGHLIGHT if d else "" for d in row.differs_from_first()) for row in diff.differing]
    styled = differing.style.apply(lambda frame: pd.DataFrame(marks, index=frame.index, columns=frame.columns), axis=None)
    st.dataframe(styled, hide_index=True, width="stretch")
    st.download_button("Download the diff as CSV", differing.to_csv(index=False), file_name="lthvp_compare_diff.csv",
                       mime="text/csv", on_click="ignore")
else:
    st.caption("These runs share every setting (config, ticket, data sizes, code version and packages).")
with st.expander(f"Shared by all {len(records)} runs ({len(diff.shared)} fields)"):
    shared = compare_views.diff_frame(diff.shared, letters)[["field", letters[0]]].rename(columns={letters[0]: "value"})
    st.dataframe(shared, hide_index=True, width="stretch")

st.subheader("Training curves")
left, right = st.columns(2)  # side by side; stacked on a narrow screen
for panel, where in (("accuracy", left), ("loss", right)):
    db.drawn("The runs' training curves", lambda panel=panel, where=where: charts.show(
        compare_views.curves_overlay(records, panel), f"cmp_{panel}", where=where))
st.caption("Validation solid, training dotted; a star marks each run's chosen epoch (by validation accuracy).")

st.subheader("Reliability")
layout = st.radio("Reliability diagrams", ["overlaid", "side by side"], key="rel_layout", bind="query-params",
                  horizontal=True)
if layout == "overlaid":
    db.drawn("The runs' reliability curves", lambda: charts.show(compare_views.reliability_overlay(records), "cmp_rel"))
else:
    for i, fig in enumerate(compare_views.reliability_rows(records)):
        db.drawn("The runs' reliability diagrams", lambda fig=fig, i=i: charts.show(fig, f"cmp_rel_{i}"))
st.caption("Accuracy per confidence bin against the diagonal; the ECE is computed from the drawn bin table.")

st.subheader("Prompts")
view = st.radio("Prompt display", list(PROMPT_VIEWS), key="cmp_view", bind="query-params", horizontal=True,
                help="; ".join(f"{k}: {v}" for k, v in PROMPT_VIEWS.items()))


def prompts() -> None:
    figures, without = compare_views.prompt_figures(records, view)
    for row in range(0, len(figures), 3):  # three per row; stacked on a narrow screen
        for i, (fig, where) in enumerate(zip(figures[row:row + 3], st.columns(3)), start=row):
            charts.show(fig, f"cmp_prompt_{i}", where=where, png_width=None)
    if without:
        st.caption("No learned prompt (LP, or a record without one): " + plain("; ".join(without), 400))


db.drawn("The runs' prompts", prompts)
