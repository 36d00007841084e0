"""Sparsity curves: a metric against remaining weights, VP vs LP, per shot count and per compression arm, mean and CI."""

import streamlit as st

from lthvp.analysis import replicates, report
from lthvp.ui import app_frame, arm_views
from lthvp.ui import charts
from lthvp.ui import compare_picker
from lthvp.ui import dashboard as db
from lthvp.ui import plots, study_views

app_frame.ensure_frame()

st.title("Sparsity curves")
df = db.results_or_stop()
df, study = study_views.study_scope(df)  # the study's planned runs unless the sidebar says all runs

c1, c2, c3 = st.columns([1, 1, 2])
ds = db.dataset_select(df, c1)
part = df[df["dataset"] == ds]
metric = c2.selectbox("Metric", list(plots.METRICS), key="metric", bind="query-params",
                      help="accuracy, ece (expected calibration error, 15 bins), mce (maximum calibration "
                           "error), nll (negative log-likelihood), brier (multiclass Brier score)")
by = c3.radio("One line per", ["shots", "method"], key="by", bind="query-params", horizontal=True,
              help="shots: one panel per method (VP | LP), one line per shot count; "
                   "method: one panel per shot count, VP and LP lines")

c4, c5, c6 = st.columns([1, 1.5, 1.5])
methods_all = [m for m in ("vp", "map", "lp") if m in set(part["method"])]
methods = db.linked(c4, "multiselect", "Methods", methods_all, "methods", methods_all,
                    format_func=lambda m: plots.METHOD_NAMES.get(m, m))
shots_all = plots.shots_order(part["shots"].unique())
shots = db.linked(c5, "multiselect", "Shots per class", shots_all, "shots", shots_all, format_func=plots.shots_label)
arms_all = arm_views.arm_order(part["arm"].unique())
arms = db.linked(c6, "multiselect", "Arms", arms_all, "arms", arms_all,
                 help="; ".join(f"{a} = {arm_views.arm_name(a)}" for a in arms_all)
                 + ". Pruning arms are drawn at IMP level L's remaining weights (ticket solid, random dashed, the "
                   "others dotted / dash-dotted); quantized arms (quant8, quant4) keep IMP level L's mask, so they are "
                   "markers at that level with their bits per weight in the hover")

sel = part[part["method"].isin(methods) & part["shots"].isin(shots) & part["arm"].isin(arms)]
if sel.empty:
    st.warning("Nothing stored for this selection.")
    st.stop()

c7, c8 = st.columns([3, 1])
VIEW_NAMES = {"metric": "absolute", "vs dense": "dense", "IMP - random": "random"}  # shown (and in the URL) -> view
view = VIEW_NAMES[c7.radio("Show", list(VIEW_NAMES), key="view", bind="query-params", horizontal=True,
                           help="; ".join(f"{k}: {report.VIEWS[v]}" for k, v in VIEW_NAMES.items()))]
runs = c8.toggle("Every run", key="runs", bind="query-params", help="each run as a point; click one to open it")

label = plots.METRICS[metric][0]
value = None
if view != "absolute":
    paired = report.paired_difference(sel, metric, view)
    dropped = len(sel) - len(paired) - (int((sel["arm"] == "random").sum()) if view == "random" else 0)
    if paired.empty:
        st.warning("No paired runs in this selection: "
                   + ("no level-0 (dense) run shares a family, seed, method and shot count with the others."
                      if view == "dense" else "IMP and random-pruning runs never share a family, seed, method, "
                      "shot count and level here (select both arms)."))
        st.stop()
    sel, value = paired, "delta"
    if dropped:
        st.caption(f"{dropped} run(s) without a partner are left out.")
title = f"{ds}: {label} vs remaining weights" if view == "absolute" else f"{ds}: {report.VIEWS[view]}"
fig = plots.sparsity_figure(sel, metric, by=by, title=title, value=value, runs=runs)
event = charts.show(fig, "curves", on_select="rerun",
                    selection_mode=("points", "box", "lasso") if runs else "points")  # box/lasso: compare runs
clicked = [p["customdata"][0] for p in (event.selection.points if event else [])
           if isinstance(p.get("customdata"), list) and db.is_hash(p["customdata"][0])]
if len(clicked) == 1:
    st.switch_page("pages/run-detail.py", query_params={"hash": clicked[0]})
compare_picker.link_to_compare(compare_picker.selected_from_chart(event))  # several runs boxed or lassoed
agg = replicates.with_replication(report.aggregate(sel, value or metric), sel, value or metric)
study_views.unequal_warning(agg)
st.caption(f"{len(sel)} runs. {plots.AGGREGATE_NOTE}; hover for exact numbers and replicates (families x seeds). "
           "x: remaining "
           "prunable weights (all conv + linear), log scale, denser on the left."
           + (" Click a point to open its run; box- or lasso-select 2-6 runs to compare them." if runs
              else " Turn on *Every run* and click a point to open that run.")
           + (" Quantized arms: markers at the IMP level whose mask they keep (bars: 95% interval), bits per weight "
              "in the hover." if set(arms) & set(arm_views.QUANT_BITS) else ""))

unit = plots.unit(metric, bool(value)).replace("%", " %")  # the table and its CSV in the chart's units (pts: differences)
scale = 100 if unit else 1
agg = agg.assign(remaining=(100 * agg["remaining"]).round(2), **{c: scale * agg[c] for c in ("mean", "std", "lo", "hi")})
agg = agg.drop(columns=["n"]).sort_values(["method", "arm", "shots", "level"]).rename(
    columns={"remaining": "remaining %", **{c: c + unit for c in ("mean", "std", "lo", "hi")}})
with st.expander(f"Numbers ({'change in ' if value else ''}{label}: mean, 95% CI, replicates)", expanded=False):
    st.dataframe(agg, hide_index=True, width="stretch")
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

study_views.study_panel(df, study)  # its design and the code versions behind it
