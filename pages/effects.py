"""Effects: what the data can claim, with intervals, corrected p and the minimum detectable effect
(lthvp.analysis.effects computes; this page reads and draws). Family and seed are crossed random
factors; the family-mean t-test is shown beside as a sensitivity check."""

import pandas as pd
import streamlit as st

from lthvp.analysis import effects as E
from lthvp.analysis.report import shots_label, shots_order
from lthvp.ui import app_frame, arm_views
from lthvp.ui import charts
from lthvp.ui import dashboard as db
from lthvp.ui import study_views
from lthvp.ui.effect_plots import forest_figure, verdict_lines
from lthvp.ui.units import difference_unit, effects_in_units

app_frame.ensure_frame()

st.title("Effects")
df = db.results_or_stop()
df, study = study_views.study_scope(df)  # the study's planned runs unless the sidebar says all runs

c1, c2, c3 = st.columns(3)
ds = db.dataset_select(df, c1)
metric = c2.selectbox("Metric", list(E.METRICS), key="metric", bind="query-params",
                      help="ts_*: after temperature scaling fitted on each run's validation split")
table = study_views.effects_table(metric, ds, df, study)
study_views.scope_caption(study, df[df["dataset"] == ds], "Every contrast on this page")
if table.empty:
    st.info("No contrast can be formed for this metric and dataset (older records lack temperature-scaled "
            "metrics and per-sample predictions: those metrics are unavailable for them).")
    st.stop()
levels = sorted({int(c[1:].split("-")[0]) for c in table["contrast"] if c.startswith("L")})
level = db.linked(c3, "selectbox", "Level for contrasts", levels, "level", levels[-1] if levels else None,
                  format_func=lambda lv: f"L{lv}")

n_fam = int(table["n_families"].max())
st.caption(f"{n_fam} ticket famil{'y' if n_fam == 1 else 'ies'}; contrasts are paired within (family, seed). "
           + ("With one family, seeds are the replicates: intervals ignore the spread between tickets."
              if n_fam < 2 else "Every family reuses the same seeds (shot samples), so family and seed are crossed "
              "random factors: intervals and p come from a crossed random-effects model (variance components for "
              "family, seed and residual; Satterthwaite df). The family-mean t-test is kept as a sensitivity check."))
report = E.replication_report(df[df["dataset"] == ds] if ds else df)
study_views.cell_warning(df[df["dataset"] == ds] if ds else df, metric)
if report.empty:
    st.caption("Replication: every cell holds the same (family, seed) replicates, one run each.")
else:
    with st.expander(f"Replication: {len(report)} cell(s) left out or incomplete (never pooled)"):
        st.dataframe(report, hide_index=True)


def say(rows, question: str) -> None:
    st.markdown(f"**{question}**")
    if rows.empty:
        st.text("no runs pair up for this question")
        return
    rows = rows.set_index("shots").loc[shots_order(rows["shots"])].reset_index()
    st.text("\n".join(f"{shots_label(r['shots']):>10}: {E.verdict(r, metric=metric)}" for _, r in rows.iterrows()))


st.subheader("The paper's questions")
slopes = table[table["contrast"] == "slope"]
say(slopes[slopes["method"] == "vp"],
    "Does sparsity change VP? (slope per halving of the remaining weights: negative = sparsity hurts)")
say(slopes[slopes["method"] == "lp"], "Does sparsity change LP?")
say(table[table["contrast"] == "vp-lp_slope"],
    "Does sparsity cost VP more than LP? (VP slope - LP slope: negative = VP loses more)")
vp_map = table[table["contrast"] == "vp-map_L0"]
if not vp_map.empty:
    say(vp_map, "Does the prompt itself help on the dense model? (VP - mapping only, L0)")


def slopes_with_levels(rows: pd.DataFrame) -> pd.DataFrame:
    """Each slope beside the per-level estimates it summarises (points for percentages), its MDE
    and the shape check: a slope carried by the dense level alone is flagged."""
    k, u = E.points_scale(metric), difference_unit(metric)
    out = []
    for _, r in rows.iterrows():
        line = {"question": {"vp-lp": "VP - LP"}.get(r["method"], r["method"].upper()), "shots": shots_label(r["shots"]),
                f"slope ({u})": k * r["estimate"], f"95% CI ({u})": f"[{k * r['ci_low']:+.2f}, {k * r['ci_high']:+.2f}]",
                "corrected p": r["p_adj"], f"MDE ({u})": k * r["mde"]}
        line.update({f"L{lv} - L0 ({u})": k * est for lv, est in E.per_level_estimates(table, r["method"], r["shots"])})
        line.update({f"slope without L0 ({u})": k * r["slope_wo_L0"], "L0 step p": r["shape_p"],
                     "carried by L0": bool(r["driven_by_L0"])})
        out.append(line)
    return pd.DataFrame(out)


slope_rows = table[table["contrast"].isin(["slope", "vp-lp_slope"])]
if not slope_rows.empty:
    st.markdown("**Slopes and the levels behind them**")
    order = {s: i for i, s in enumerate(shots_order(slope_rows["shots"]))}
    slope_rows = slope_rows.assign(_o=slope_rows["shots"].map(order)).sort_values(["method", "_o"])
    shown = slopes_with_levels(slope_rows)
    st.dataframe(shown, hide_index=True, column_config={
        c: st.column_config.NumberColumn(format="%.3g" if c.endswith(" p") else "%.2f" if c.startswith("MDE") else "%+.2f")
        for c in shown.columns if c not in ("question", "shots", "carried by L0") and not c.startswith("95% CI")})
    st.caption("Per level: L{k} - L0 from the same paired runs. L0 step p tests whether the dense level departs "
               "from the line through the sparse levels; 'carried by L0' marks a detected slope with such a step "
               "and no slope over the sparse levels alone. MDE: the smallest effect detected with 80% power at "
               "the corrected level, from the fitted variance components.")

st.subheader(f"Level L{level} vs dense L0")
at_level = table[table["contrast"] == f"L{level}-L0"]
charts.show(forest_figure(at_level, f"{metric}: L{level} - L0", metric), "forest_level")
left, right = st.columns(2)
slopes_both = table[table["contrast"].isin(["slope", "vp-lp_slope"])]
charts.show(forest_figure(slopes_both, f"{metric}: slope per halving, VP vs LP", metric), "forest_slope", where=left)
arms = table[table["contrast"].isin([f"imp-random_L{level}", f"vp-map_L{level}"])]
if arms.empty:
    right.info(f"No random-arm or mapping-only runs pair with L{level}.")
else:
    charts.show(forest_figure(arms, f"{metric}: IMP - random and VP - mapping only at L{level}", metric),
                "forest_arms", where=right)

st.subheader("IMP vs other pruning at equal sparsity")
pruned = arm_views.pruning_contrasts(table, level)
if not pruned:
    have = arm_views.arm_levels(table, "imp-")
    st.info(f"No runs of another pruning arm (random, one-shot, structured) pair with IMP at L{level}"
            + (f" (they do at {', '.join(f'L{lv}' for lv in have)})." if have else
               ": build the arms (`python -m lthvp tickets --arm oneshot ...`) and run them (`--arm` on run/sweep)."))
else:
    for arm, rows in pruned:
        st.markdown(f"**{arm_views.pruning_question(arm, level, metric)}**")
        st.text(verdict_lines(rows, metric))
    charts.show(forest_figure(pd.concat([r for _, r in pruned]), f"{metric}: IMP - other pruning at L{level}", metric),
                "forest_pruning")

st.subheader("Quantization vs its unquantized level")
qlevels = arm_views.arm_levels(table, "quant")
if not qlevels:
    st.info("No quantized runs (quant8, quant4) pair with their float IMP level here.")
else:
    qlevel = db.linked(st, "selectbox", "Quantized level", qlevels, "qlevel", qlevels[0],
                       format_func=lambda lv: f"L{lv}", help="L0: the dense model quantized, minus dense")
    quant = arm_views.quant_contrasts(table, qlevel)
    for arm, rows in quant:
        st.markdown(f"**{arm_views.quant_question(arm, qlevel, metric)}**")
        st.text(verdict_lines(rows, metric))
    both = pd.concat([r for _, r in quant])
    if metric in ("ece", "nll", "brier", "mce"):  # is a calibration cost repairable by temperature scaling?
        qa, qb = st.columns(2)
        charts.show(forest_figure(both, f"raw {metric}: quantized - float, L{qlevel}", metric), "forest_quant", where=qa)
        ts = study_views.effects_table(f"ts_{metric}", ds, df, study)
        ts_rows = arm_views.quant_contrasts(ts, qlevel) if not ts.empty else []
        if not ts_rows:
            qb.info("No temperature-scaled metrics pair up for the quantized runs (older records): unavailable, not zero.")
        else:
            charts.show(forest_figure(pd.concat([r for _, r in ts_rows]),
                                      f"temperature-scaled {metric}: quantized - float, L{qlevel}", f"ts_{metric}"),
                        "forest_quant_ts", where=qb)
    else:
        charts.show(forest_figure(both, f"{metric}: quantized - float, L{qlevel}", metric), "forest_quant")

if metric in ("ece", "nll", "brier", "mce"):
    st.subheader("Raw vs temperature-scaled calibration")
    scaled = study_views.effects_table(f"ts_{metric}", ds, df, study)
    a, b = st.columns(2)
    charts.show(forest_figure(at_level, f"raw {metric}: L{level} - L0", metric), "raw_cal", where=a)
    if scaled.empty:
        b.info("No temperature-scaled metrics in these records (older bundles): unavailable, not zero.")
    else:
        charts.show(forest_figure(scaled[scaled["contrast"] == f"L{level}-L0"],
                                  f"temperature-scaled {metric}: L{level} - L0", f"ts_{metric}"), "ts_cal", where=b)

st.subheader("All contrasts")
readable = effects_in_units(table, metric)  # the same numbers as the text and plots: points for % metrics
st.dataframe(readable, hide_index=True)
st.download_button("Download CSV", readable.to_csv(index=False), file_name=f"effects_{ds}_{metric}.csv")
st.caption("Filled markers: detected at 5% after Bonferroni's correction across the shot counts of one question "
           "(p_adj); open markers: not detected. Dark bars: each contrast's own 95% interval; light bars: the "
           "simultaneous interval over the question's shot counts, which misses zero exactly when the marker is "
           "filled. Hover for p, the corrected p, the MDE and the family-mean check. Table columns: *_adj = "
           "simultaneous, *_fm = family-mean t-test, mde = minimum detectable effect (80% power, corrected level). "
           f"Differences in {difference_unit(metric)}" + (" (percentage points)" if difference_unit(metric) == "pts" else "")
           + "; p values, df and counts as they are.")

study_views.study_panel(df, study)  # its design and the code versions behind it
