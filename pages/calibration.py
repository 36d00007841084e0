"""Calibration: reliability diagrams per level, VP and LP side by side, dense vs sparse."""

import streamlit as st

from lthvp.ui import app_frame
from lthvp.ui import charts
from lthvp.ui import dashboard as db
from lthvp.ui import plots, reliability_plots, study_views

app_frame.ensure_frame()

st.title("Calibration")
df = db.results_or_stop()
df, study = study_views.study_scope(df)  # the study's planned runs unless the sidebar says all runs
study_views.scope_caption(study, df, "Every panel on this page")
ADDED = set(df.loc[~df["in_study"], "hash"])  # runs added after the study (only with "Study runs only" off)

if db.several_families(df):  # a family picker only where there is a choice
    c1, cf, c2, c3, c4 = st.columns(5)
else:
    (c1, c2, c3, c4), cf = st.columns(4), None
ds = db.dataset_select(df, c1)
part = db.single_family(db.ticket_rows(df, ds), cf)  # the single-run panels compare runs of one ticket family
shot = db.shot_select(part, c2)
part = part[part["shots"] == shot]
seeds = sorted(int(s) for s in part["seed"].unique())
seed = db.linked(c3, "selectbox", "Seed", seeds, "seed", seeds[0] if seeds else None)
part = part[part["seed"] == seed]
levels = sorted(int(v) for v in part["level"].unique())
level = db.linked(c4, "selectbox", "Level", levels, "level", levels[-1] if levels else None,
                  format_func=lambda lv: f"L{lv}")

st.subheader(f"VP vs LP at level L{level}")
panels, missing = [], []
for method in ("vp", "map", "lp"):
    rec = db.find_record(part, method=method, level=level)
    if rec is not None:
        panels.append((plots.record_label(rec), rec))
    elif method != "map":
        missing.append(plots.METHOD_NAMES.get(method, method))
if missing and panels:
    st.info(f"No {' or '.join(missing)} run is stored for level L{level} at this shot count and seed; "
            "only the stored method is shown.")
if panels:
    charts.show(reliability_plots.reliability_figure(panels), "vp_lp")
    cols = st.columns(len(panels))
    for col, (label, rec) in zip(cols, panels):
        m = rec["metrics"]
        star = " ★ added after the study" if rec["hash"] in ADDED else ""
        col.caption(f"**{label}**{star} · stored: accuracy {100 * m['accuracy']:.2f}%, ECE {100 * m['ece']:.2f}%, "
                    f"MCE {100 * m['mce']:.2f}%, NLL {m['nll']:.3f}, Brier {m['brier']:.3f}")
else:
    st.warning("No run stored for this level.")

st.subheader("Dense vs sparse")
d1, d2 = st.columns(2)
methods = [m for m in ("vp", "map", "lp") if m in set(part["method"])]
method = db.linked(d1, "selectbox", "Method", methods, "method", methods[0] if methods else None,
                   format_func=lambda m: plots.METHOD_NAMES.get(m, m))
sparse_opts = [lv for lv in sorted(int(v) for v in part[part["method"] == method]["level"].unique())]
sparse = db.linked(d2, "selectbox", "Sparse level", sparse_opts, "sparse", sparse_opts[-1] if sparse_opts else None,
                   format_func=lambda lv: f"L{lv}")
dense_rec = db.find_record(part, method=method, level=min(sparse_opts)) if sparse_opts else None
if sparse_opts and min(sparse_opts) != 0:
    st.info(f"No dense (level 0) run is stored for this method, shot count and seed; the least sparse stored "
            f"level, L{min(sparse_opts)}, stands in as the reference.")
sparse_rec = db.find_record(part, method=method, level=sparse) if sparse_opts else None
pair = [(("dense " if r["config"]["level"] == 0 else "") + plots.record_label(r) + (" ★" if r["hash"] in ADDED else ""), r)
        for r in (dense_rec, sparse_rec) if r is not None]
if len(pair) == 2 and pair[0][1]["hash"] == pair[1][1]["hash"]:
    pair = pair[:1]
if pair:
    charts.show(reliability_plots.reliability_figure(pair), "dense_sparse")
st.caption("Bars: accuracy per confidence bin (15 equal-width bins, top-label); red: gap to the bin's mean "
           "confidence (above the bar = over-confident); grey: share of test samples per bin. The ECE on each "
           "panel is computed from the drawn bin table and equals the stored number.")

st.subheader("Calibration across levels (mean over seeds, 95% CI)")
metric = st.radio("Metric", ["ece", "mce", "nll", "brier"], key="cal_metric", bind="query-params", horizontal=True)
all_seeds = df[(df["dataset"] == ds) & (df["shots"] == shot) & (df["arm"] == "ticket")]
shift = plots.calibration_shift_figure(all_seeds, metric)
reps = study_views.cell_warning(all_seeds, metric)  # names the cells whose families hold unequal seeds
study_views.replication_hover(shift, reps)  # each bar's hover: families x seeds = runs
charts.show(shift, "shift")
st.caption("Hover a bar for its replicates (families x seeds = runs); a cell with unequal replication is named "
           "above: its mean weighs families unlike the others'.")
