"""Subpopulations: who pays for compression. Per-class changes at a sparse level vs dense (VP and
LP side by side) and the test images whose modal prediction sparsity changes (pruning-identified
exemplars), shown as the real images. lthvp.analysis.subpopulations computes; this page draws."""

import streamlit as st

from lthvp.analysis import subpop_report as R
from lthvp.analysis import subpopulations as S
from lthvp.analysis.pairing import family_keys
from lthvp.analysis.report import shots_label
from lthvp.ui import app_frame
from lthvp.ui import charts
from lthvp.ui import dashboard as db
from lthvp.ui import plots, study_views, subpop_plots
from lthvp.ui.text import plain

app_frame.ensure_frame()


@st.cache_data(show_spinner="Loading the test images…", max_entries=4)
def test_split(dataset: str):
    """(images, labels, class names) of the dataset's test split, or (None, why) when unavailable."""
    try:
        return S.test_split(dataset), None
    except Exception as err:  # missing offline data: say so instead of failing the page
        return None, str(err)


@st.cache_data(show_spinner="Reading per-sample predictions…", max_entries=32)
def analysis(directory: str, version: int, dataset: str, shots: str, level: int, arm: str, methods: tuple,
             families: tuple, study: str):
    """lthvp.analysis.subpop_report.analyse over the shown families' runs (only the planned runs of
    the study with digest ``study``, when given), once per store version and choice (the store's
    records are read here, not kept)."""
    split, why = test_split(dataset)
    if split is None:
        return None, why
    table = db.results()
    table = table[[f in set(families) for f in family_keys(table["family"])]]
    if study:
        (planned,) = [s for s in study_views.registry()[0] if s.digest == study]
        table = table[table["hash"].isin(set(planned.members))]
    _, labels, names = split
    try:
        return R.analyse(table, db.store().get, labels, names, dataset, shots, list(methods), level, arm), None
    except ValueError as err:  # predictions of another test split, malformed arrays
        return None, str(err)


st.title("Subpopulations")
st.caption("Who pays for compression: which classes, and which test images, a sparse ticket gets wrong that "
           "the dense model got right (and the other way round), VP vs LP.")
df = db.results_or_stop()
df, study = study_views.study_scope(df)  # the study's planned runs unless the sidebar says all runs
study_views.scope_caption(study, df, "Every number on this page")

c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 1, 2])
ds = db.dataset_select(df, c1)
part = df[df["dataset"] == ds]
arms = sorted(set(part.loc[part["level"] > 0, "arm"]), key=lambda a: a != "ticket") or ["ticket"]
arm = db.linked(c2, "selectbox", "Arm", arms, "arm", arms[0],
                help="ticket = IMP lottery ticket; random = random pruning at equal sparsity; both against the "
                     "dense ticket level 0")
sparse = part[(part["arm"] == arm) & (part["level"] > 0)]
shot = db.shot_select(sparse if not sparse.empty else part, c3)
levels = sorted(int(v) for v in sparse.loc[sparse["shots"] == shot, "level"].unique())
level = db.linked(c4, "selectbox", "Sparse level", levels, "level", levels[-1] if levels else None,
                  format_func=lambda lv: f"L{lv}")
methods_all = [m for m in ("vp", "map", "lp") if m in set(part["method"])]
methods = db.linked(c5, "multiselect", "Methods", methods_all, "methods",
                    [m for m in methods_all if m != "map"] or methods_all,
                    format_func=lambda m: plots.METHOD_NAMES.get(m, m))
if level is None or not methods:
    st.warning("No sparse level is stored for this dataset, arm and shot count." if level is None
               else "Choose at least one method.")
    st.stop()

families = tuple(sorted(set(family_keys(df["family"]))))
res, why = analysis(str(db.store_dir()), db.store().version, ds, shot, level, arm, tuple(methods), families,
                    study.digest if study is not None and study_views.study_only() else "")
cells = part[part["method"].isin(methods) & (part["shots"] == shot)
             & (((part["level"] == 0) & (part["arm"] == "ticket")) | ((part["level"] == level) & (part["arm"] == arm)))]
reps = study_views.cell_warning(cells, "accuracy")  # names the dense or sparse cells with unequal replication
if res is None:
    st.warning(f"Nothing to analyse: {plain(why, 400)}")  # error text names files and values: shown as typed
    st.stop()
if res["runs_without_predictions"]:
    st.info(f"{res['runs_without_predictions']} selected run(s) store no per-sample test predictions (older "
            "records) and are left out.")
if not res["summaries"]:
    st.warning(f"No (family, seed) has both a dense (L0) and an L{level} run of the chosen methods with "
               "per-sample predictions.")
    st.stop()
classes, shown = res["classes"], [m for m in methods if m in res["summaries"]]
remaining = float(sparse.loc[sparse["level"] == level, "remaining_fraction"].iloc[0])
where = f"L{level} ({100 * remaining:.1f}% of the weights{'' if arm == 'ticket' else ', ' + arm + ' pruning'})"

st.subheader(f"Per class: {where} minus dense")
metric = st.radio("Metric", list(S.METRICS), key="class_metric", bind="query-params", horizontal=True,
                  help="over the test images of each true class: accuracy, or top-label ECE (15 bins)")
rows = res["per_class"][res["per_class"]["metric"] == metric]
charts.show(subpop_plots.per_class_figure(rows, metric, f"{ds}, {shots_label(shot)}: change per class",
                                          shown), "per_class")
if {"vp", "lp"} <= set(shown):
    charts.show(subpop_plots.per_class_figure(rows, metric, "VP's change minus LP's, per class", ["vp-lp"]),
                "per_class_vp_lp")
unit = rows["unit"].iloc[0] if len(rows) else "family"
over = R.units_text(int(rows["n_units"].max()), unit) if len(rows) else "the units"
st.caption(f"Paired within (family, seed); the bars are 95% t-intervals over {over} "
           f"({'seeds averaged inside each family' if unit == 'family' else 'one family: seeds are the units'}), "
           "cut at +-105 points. * = detected at 5% after Holm's correction over the classes. Hover for the dense "
           "and sparse values. Replicates stored: " + plain("; ".join(
               f"{plots.METHOD_NAMES.get(r.method, r.method)} L{r.level}: {r.replication}" for r in reps.itertuples()), 600) + ".")
with st.expander("Per-class numbers"):
    st.dataframe(rows, hide_index=True, width="stretch")
    st.download_button("Download CSV", rows.to_csv(index=False), file_name=f"lthvp_{ds}_per_class_{metric}.csv",
                       mime="text/csv", on_click="ignore", key="per_class_csv")

st.subheader("Exemplars: test images whose modal prediction changes")
st.caption("Per image, the modal top-1 prediction over the paired runs (families x seeds) at dense and at the sparse "
           "level (ties: the class with the highest mean probability, then the smallest index); an exemplar is an "
           "image where the two differ (Hooker et al. 2019). The 95% interval is Wilson's, over the test images.")
st.text("\n".join(R.summary_line(res["summaries"][m]) for m in shown))
venn = res["overlap"]
if venn:
    v1, v2, v3 = st.columns(3)
    n_test = res["summaries"]["vp"]["n_test"]
    for col, label, n in ((v1, "VP only", venn["a_only"]), (v2, "both", venn["both"]), (v3, "LP only", venn["b_only"])):
        col.metric(label, n, help=f"{100 * n / n_test:.1f}% of the {n_test} test images")

images = res["images"]
sets = {m: set(images.loc[(images["method"] == m) & images["exemplar"], "image"]) for m in shown}
choices = list(shown) + (["vp only", "both", "lp only"] if venn else [])
LABELS = {"vp only": "VP only", "both": "VP and LP", "lp only": "LP only"}
g1, g2 = st.columns([3, 1])
pick = db.linked(g1, "radio", "Gallery", choices, "gallery", choices[0], horizontal=True,
                 format_func=lambda c: LABELS.get(c, plots.METHOD_NAMES.get(c, c)))
limit = g2.selectbox("Images shown", ["24", "48", "96", "all"], index=1, key="n_images", bind="query-params")
KINDS = {"all": "all", "broken": "newly broken", "fixed": "fixed", "hard": "wrong either way"}
kind = g1.radio("Which", list(KINDS), key="kind", bind="query-params", horizontal=True, format_func=KINDS.get,
                help="newly broken: dense right, sparse wrong; fixed: dense wrong, sparse right; wrong either way: "
                     "two different wrong classes. Judged by the modal predictions of the gallery's method (VP for "
                     "the overlaps)")
chosen = {"vp only": sets.get("vp", set()) - sets.get("lp", set()), "both": sets.get("vp", set()) & sets.get("lp", set()),
          "lp only": sets.get("lp", set()) - sets.get("vp", set())}.get(pick, sets.get(pick, set()))
lead = "vp" if pick in ("vp only", "both") else "lp" if pick == "lp only" else pick
order = S.gallery_order(images[(images["method"] == lead) & images["image"].isin(chosen)
                               & ((images["kind"] == kind) | (kind == "all"))])
split, _ = test_split(ds)
x = split[0]
name = lambda c: classes[int(c)] if int(c) < len(classes) else str(c)  # noqa: E731
by_method = {m: images[images["method"] == m].set_index("image") for m in shown}
picked = list(order["image"]) if limit == "all" else list(order["image"])[:int(limit)]
st.caption(f"{len(order)} image(s); {len(picked)} shown, the most consistent flips first (vote share at the sparse "
           "level, then at dense). Each line: method: dense modal prediction (share of runs) -> sparse.")
COLS = 8
for start in range(0, len(picked), COLS):
    for col, i in zip(st.columns(COLS), picked[start:start + COLS]):
        col.image(subpop_plots.enlarge(x[i]), output_format="PNG")
        lines = [f"#{i} true {name(by_method[lead].loc[i, 'true'])} · {by_method[lead].loc[i, 'kind']}"]
        for m in shown if pick in ("both",) else [lead]:
            r = by_method[m].loc[i]
            lines.append(f"{plots.METHOD_NAMES.get(m, m)}: {name(r['dense_pred'])} ({100 * r['dense_share']:.0f}%) -> "
                         f"{name(r['sparse_pred'])} ({100 * r['sparse_share']:.0f}%)")
        col.text("\n".join(lines))

table = R.named_images(images, classes, sets.get("vp", set()) & sets.get("lp", set()) if venn else None)
with st.expander("Per-image table (exemplars; the CSV has every test image)"):
    st.dataframe(table[table["exemplar"]], hide_index=True, width="stretch")
st.download_button("Download per-image CSV", table.to_csv(index=False),
                   file_name=f"lthvp_{ds}_{shots_label(shot).replace(' ', '_')}_L{level}_{arm}_images.csv",
                   mime="text/csv", on_click="ignore", key="images_csv")
