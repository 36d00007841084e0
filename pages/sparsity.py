"""Sparsity curves: a metric against remaining weights, VP vs LP, per shot count, mean and CI over seeds."""

import streamlit as st

from lthvp import dashboard as db
from lthvp import plots, report

db.frame_guard()

st.title("Sparsity curves")
df = db.results_or_stop()

c1, c2, c3 = st.columns([1, 1, 2])
ds = db.dataset_select(df, c1)
part = df[df["dataset"] == ds]
metric = c2.selectbox("Metric", list(plots.METRICS), key="metric", bind="query-params",
                      help="accuracy, ece (expected calibration error, 15 bins), mce (maximum calibration "
                           "error), nll (negative log-likelihood), brier (multiclass Brier score)")
by = c3.radio("One line per", ["shots", "method"], key="by", bind="query-params", horizontal=True,
              help="shots: one panel per method (VP | LP), one line per shot count; "
                   "method: one panel per shot count, VP and LP lines")

c4, c5, c6 = st.columns([1, 2, 1])
methods_all = [m for m in ("vp", "map", "lp") if m in set(part["method"])]
methods = c4.multiselect("Methods", methods_all, default=methods_all, key="methods", bind="query-params",
                         format_func=lambda m: plots.METHOD_NAMES.get(m, m))
shots_all = plots.shots_order(part["shots"].unique())
shots = c5.multiselect("Shots per class", shots_all, default=shots_all, key="shots", bind="query-params",
                       format_func=plots.shots_label)
arms_all = sorted(part["arm"].unique(), key=lambda a: a != "ticket")
arms = c6.multiselect("Arms", arms_all, default=arms_all, key="arms", bind="query-params",
                      help="ticket = IMP lottery ticket; random = random pruning at equal sparsity (dashed)")

sel = part[part["method"].isin(methods) & part["shots"].isin(shots) & part["arm"].isin(arms)]
if sel.empty:
    st.warning("Nothing stored for this selection.")
    st.stop()

label = plots.METRICS[metric][0]
fig = plots.sparsity_figure(sel, metric, by=by, title=f"{ds}: {label} vs remaining weights")
st.plotly_chart(fig, key="curves", theme=None)
st.caption(f"{len(sel)} runs. Mean over seeds; band = 95% t-interval (none with one seed); hover for exact "
           "numbers and run counts. x: remaining prunable weights (all conv + linear), log scale, "
           "denser on the left.")

agg = report.aggregate(sel, metric)
agg = agg.assign(remaining=(100 * agg["remaining"]).round(2)).sort_values(["method", "arm", "shots", "level"])
with st.expander(f"Numbers ({label}: mean, 95% CI, runs)", expanded=False):
    st.dataframe(agg, hide_index=True, width="stretch",
                 column_config={"remaining": st.column_config.NumberColumn("remaining %", format="%.2f")})
    st.download_button("Download CSV", agg.to_csv(index=False), file_name=f"lthvp_{ds}_{metric}.csv",
                       mime="text/csv", on_click="ignore")

presets = sorted(sel["preset"].unique())
src = db.source_accuracies(presets[0]) if len(presets) == 1 else None
if src is not None and not src.empty:
    with st.expander("Each ticket's own source-task accuracy (the premise: tickets match the dense model upstream)"):
        wide = src.pivot_table(index=["arm", "level", "remaining %"], columns="family",
                               values="source test accuracy %").reset_index()
        st.dataframe(wide, hide_index=True, width="stretch")
        st.download_button("Download CSV", wide.to_csv(index=False), file_name=f"lthvp_{presets[0]}_source_accuracy.csv",
                           mime="text/csv", on_click="ignore", key="src_csv")
