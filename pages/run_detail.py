"""One run, inspectable: config, identity, provenance, curves, chosen epoch, per-class accuracy,
reliability diagram, prompt and mapping; a searchable runs table opens any run (?hash=...)."""

import pandas as pd
import streamlit as st

from lthvp.analysis.pairing import family_keys
from lthvp.ui import app_frame
from lthvp.ui import charts
from lthvp.ui import dashboard as db
from lthvp.ui import plots, prompt_plots, reliability_plots

app_frame.ensure_frame()


def drawn(what: str, draw) -> None:
    """Draw one part of the run; a stored record this page cannot draw (written before the record
    schema checked whole records) is a warning and the part is skipped, never a page error."""
    try:
        draw()
    except Exception as err:  # st.stop() and reruns are BaseExceptions and pass through
        st.warning(f"This run's {what} cannot be drawn ({type(err).__name__}); skipped. "
                   "`python -m lthvp store check` lists stored records that fail today's schema.")


st.title("Run")
df = db.results_or_stop()

query = st.text_input("Search runs (matches hash, method, dataset, level, shots, seed, family)", key="q",
                      bind="query-params")
cols = [c for c in ("hash", "family", "dataset", "method", "arm", "level", "shots", "seed", "accuracy", "ece",
                    "remaining_fraction") if c in df]
table = df[cols].copy()
if query:
    text = table.astype(str).agg(" ".join, axis=1)
    table = table[text.str.contains(query, case=False, regex=False)]
st.caption(f"{len(table)} of {len(df)} runs")
picked = st.dataframe(table.sort_values(["dataset", "method", "level", "shots", "seed"]), hide_index=True,
                      on_select="rerun", selection_mode="single-row", key="runs_table", height=240)
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
drawn("training curves", lambda: charts.show(prompt_plots.curves_figure(rec), "curves", where=left))
left.caption(f"Chosen epoch (round): {rec.get('best_epoch')} — by validation accuracy, ties by validation NLL; "
             f"validation images: {rec.get('n_val')}; training images: {rec.get('n_train')}; steps: {rec.get('steps')}.")
drawn("reliability diagram", lambda: charts.show(
    reliability_plots.reliability_figure([(plots.record_label(rec), rec)], height=360), "rel", where=right))

if rec.get("prompt_png"):
    st.subheader("Prompt")
    prompt = prompt_plots.decode_png(rec["prompt_png"])
    charts.show(prompt_plots.image_grid([(view, prompt_plots.prompt_view(prompt, view))
                                        for view in prompt_plots.PROMPT_VIEWS], cols=3, scale=6), "prompt")
    if rec.get("prompt_shift") is not None:
        st.caption(f"Mean distance of the border from its grey start: {255 * rec['prompt_shift']:.1f}/255.")
if rec.get("mapping"):
    st.subheader("Label mapping (target -> source class)")
    drawn("label mapping", lambda: st.dataframe(pd.DataFrame(
        {"target": rec.get("classes") or list(range(len(rec["mapping"]))), "source class": rec["mapping"]}),
        hide_index=True))

st.subheader("Per-class test accuracy")
pca = rec.get("per_class_accuracy") or []
drawn("per-class accuracy", lambda: st.dataframe(pd.DataFrame(
    {"class": rec.get("classes") or list(range(len(pca))), "accuracy": pca}), hide_index=True))

with st.expander("Config, identity and provenance"):
    st.json({"hash": key, "config": c, "ticket": rec.get("ticket"), "provenance": rec.get("provenance"),
             "timings": rec.get("timings")})
