"""One run, inspectable: config, identity, provenance, curves, chosen epoch, per-class accuracy,
reliability diagram, prompt and mapping; a searchable runs table opens any run (?hash=...)."""

import pandas as pd
import streamlit as st

from lthvp.analysis.pairing import family_keys
from lthvp.ui import app_frame
from lthvp.ui import charts
from lthvp.ui import compare_picker
from lthvp.ui import dashboard as db
from lthvp.ui import plots, prompt_plots, reliability_plots, run_search, units

app_frame.ensure_frame()


st.title("Run")
df = db.results_or_stop()

@st.cache_data(show_spinner="Reading the runs' code versions…", max_entries=4)
def commits(directory: str, version: int) -> dict[str, str]:
    """hash -> the git commit each stored run was made with (its provenance), read once per store version."""
    s = db.store()
    return {h: str(((s.get(h) or {}).get("provenance") or {}).get("git_commit") or "") for h in s.hashes()}


if "git_commit" not in df:
    df = df.assign(git_commit=df["hash"].map(commits(str(db.store_dir()), db.store().version)).fillna(""))
query = st.text_input("Search runs", key="q", bind="query-params", max_chars=300,
                      placeholder="e.g. L8 seed 3 vp 5-shot family 0 since 2026-11-29 commit 37e11bd",
                      help="Words the app uses: L8 / level 8, seed 3, family 0 / f0 / legacy, vp, lp, map / mapping-only, "
                           "1-shot / 5-shot / full, dense, a dataset, arm or preset name, since / before / until / "
                           "on 2026-11-29, commit 37e11bd, a hash prefix, acc>50 / ece<5 (in %), not vp / -vp. "
                           "Different fields must all hold (L8 seed 3); words on one field are alternatives (L2 L8).")
f1, f2, f3 = st.columns([2, 1, 1])
commit_counts = df["git_commit"].value_counts()
picked_commits = f1.multiselect("Code commit", list(commit_counts.index), key="commits", bind="query-params",
                                format_func=lambda c: f"{c[:10] or 'unknown'} ({commit_counts.get(c, 0)} runs)",
                                help="the git commit in each run's provenance (-dirty: uncommitted changes)")
since = f2.date_input("Created from", value=None, key="since", bind="query-params")
until = f3.date_input("Created until", value=None, key="until", bind="query-params")
found = run_search.search(query or "", df)
if found.notice:
    st.text(found.notice)  # the user's words: shown as typed, never as Markdown
mask = found.mask
day = df["created"].fillna("").astype(str).str[:10] if "created" in df else pd.Series("", index=df.index)
if picked_commits:
    mask &= df["git_commit"].isin(picked_commits)
if since:
    mask &= (day != "") & (day >= since.isoformat())
if until:
    mask &= (day != "") & (day <= until.isoformat())
cols = [c for c in ("hash", "family", "dataset", "method", "arm", "level", "shots", "seed", "accuracy", "ece",
                    "remaining_fraction", "created", "git_commit") if c in df]
table = df.loc[mask, cols].copy()
for c in ("accuracy", "ece", "remaining_fraction"):  # % wherever a person reads them
    if c in table:
        table[c] = 100 * table[c]
table = table.rename(columns={"accuracy": "accuracy (%)", "ece": "ECE (%)", "remaining_fraction": "remaining (%)",
                              "git_commit": "commit"})
if "created" in table:
    table["created"] = table["created"].fillna("").astype(str).str[:16].str.replace("T", " ")
st.caption(f"{len(table)} of {len(df)} runs")
picked = st.dataframe(table.sort_values(["dataset", "method", "level", "shots", "seed"]), hide_index=True,
                      on_select="rerun", selection_mode="single-row", key="runs_table", height=240)
compare_picker.picker(df, table)  # pick 2-6 of the listed runs: a link to their comparison
rows = picked.selection.rows if picked and picked.selection else []
hashes = sorted(df["hash"])
if rows:
    st.query_params["hash"] = table.sort_values(["dataset", "method", "level", "shots", "seed"]).iloc[rows[0]]["hash"]
key = st.query_params.get("hash")
if not key:
    st.info("Pick a run in the table (or open a link with ?hash=...).")
    st.stop()
if key not in set(hashes):
    st.error("No stored run has the hash in the link:")
    st.code(key, language=None)
    st.stop()
rec = db.record(key)
c = rec["config"]
st.subheader(plots.record_label(rec))
m = rec["metrics"]
k = st.columns(6)
k[0].metric("accuracy", f"{100 * m['accuracy']:.2f}%")
k[1].metric("ECE", f"{100 * m['ece']:.2f}%")
k[2].metric("MCE", f"{100 * m['mce']:.2f}%")
k[3].metric("NLL", f"{m['nll']:.3f}")
k[4].metric("Brier", f"{m['brier']:.3f}")
k[5].metric("remaining", f"{100 * rec['remaining_fraction']:.1f}%")
scaled = rec.get("scaled")
if scaled:
    st.caption(f"After temperature scaling fitted on validation (T = {scaled['temperature']:.3f}): ECE "
               f"{100 * scaled['ece']:.2f}%, NLL {scaled['nll']:.3f}, Brier {scaled['brier']:.3f}.")
else:
    st.caption("Temperature-scaled metrics: unavailable (this record predates per-sample predictions).")

same_family = df[[f == family_keys([c.get("family")])[0] for f in family_keys(df["family"])]]
dense = db.find_record(same_family, dataset=c["dataset"], method=c["method"], arm="ticket", level=0, shots=c["shots"],
                       seed=c["seed"], preset=c["preset"]) if c["level"] != 0 or c.get("arm") != "ticket" else None
if dense is not None and dense["hash"] != key:
    d = m["accuracy"] - dense["metrics"]["accuracy"]
    st.markdown(f"Same cell at dense level 0: accuracy {100 * dense['metrics']['accuracy']:.2f}% "
                f"(this run {100 * d:+.2f} points); [open it](?hash={dense['hash']})")

left, right = st.columns(2)
db.drawn("This run's training curves", lambda: charts.show(prompt_plots.curves_figure(rec), "curves", where=left))
chosen = next((r.get("steps") for r in rec.get("curves") or [] if r.get("epoch") == rec.get("best_epoch")), None)
left.caption(f"Chosen round: {rec.get('best_epoch')}" + (f" (after {chosen} steps)" if chosen is not None else "")
             + f", by validation accuracy, ties by validation NLL; budget: {units.budget_text(c)}"
             + (f", {rec['steps']} steps ran" if rec.get("steps") is not None else "")
             + f"; validation images: {rec.get('n_val')}; training images: {rec.get('n_train')}.")
db.drawn("This run's reliability diagram", lambda: charts.show(
    reliability_plots.reliability_figure([(plots.record_label(rec), rec)], height=360), "rel", where=right))

if rec.get("prompt_png"):
    st.subheader("Prompt")
    prompt = prompt_plots.decode_png(rec["prompt_png"])
    charts.show(prompt_plots.image_grid([(view, prompt_plots.prompt_view(prompt, view))
                                        for view in prompt_plots.PROMPT_VIEWS], cols=3, scale=6), "prompt")
    if rec.get("prompt_shift") is not None:
        st.caption(f"Mean distance of the border from its grey start: {255 * rec['prompt_shift']:.1f}/255.")
if rec.get("mapping"):
    st.subheader("Label mapping (target class → source class)")
    db.drawn("This run's label mapping", lambda: st.dataframe(units.mapping_frame(rec), hide_index=True))

st.subheader("Per-class test accuracy")
db.drawn("This run's per-class accuracy", lambda: st.dataframe(
    units.per_class_table(rec), hide_index=True,
    column_config={"accuracy (%)": st.column_config.NumberColumn(format="%.1f")}))

with st.expander("Config, identity and provenance"):
    st.json({"hash": key, "config": c, "ticket": rec.get("ticket"), "provenance": rec.get("provenance"),
             "timings": rec.get("timings")})
