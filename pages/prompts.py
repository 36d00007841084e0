"""Prompts: learned VP borders across sparsity levels and shots, the prompt applied to target
images, and the label mapping (target -> source class) per level and over epochs."""

import numpy as np
import streamlit as st

from lthvp.data.catalog import SOURCE_CLASSES
from lthvp.ui import app_frame
from lthvp.ui import charts
from lthvp.ui import dashboard as db
from lthvp.ui import plots, prompt_plots

app_frame.ensure_frame()


def drawable(records: list, draw) -> list:
    """The records ``draw`` can show together; one it cannot (a stored record written before the
    record schema checked whole records) is named in a warning and skipped, never a page error."""
    kept = []
    for r in records:
        try:
            draw(kept + [r])
            kept.append(r)
        except Exception as err:  # st.stop() and reruns are BaseExceptions and pass through
            st.warning(f"Run {r['hash']} cannot be drawn here ({type(err).__name__}); skipped. "
                       "`python -m lthvp store check` lists stored records that fail today's schema.")
    return kept


@st.cache_resource(show_spinner="loading target images…")
def target_examples(dataset: str, n: int = 6):
    """A few test images (N, H, W, 3 uint8) and labels; None when the dataset is not available."""
    try:
        from lthvp.data.datasets import load_dataset

        data = load_dataset(dataset)
    except Exception as err:  # missing offline data: say so instead of failing the page
        return None, str(err)
    x = data.test.x[:n].permute(0, 2, 3, 1).numpy().astype(np.uint8)
    return (x, [data.classes[int(i)] for i in data.test.y[:n]]), None


st.title("Prompts and label mappings")
df = db.results()
vp = df[df["method"] == "vp"] if not df.empty else df
if vp.empty:
    db.empty_state("visual-prompting results")
    st.stop()

vp = db.family_filter(vp)
if db.several_families(vp):  # a family picker only where there is a choice
    c1, cf, c2, c3 = st.columns(4)
else:
    (c1, c2, c3), cf = st.columns(3), None
ds = db.dataset_select(vp, c1)
part = db.single_family(db.ticket_rows(vp, ds), cf)  # prompts per level and shots: one ticket family
shot = db.shot_select(part, c2)
seeds = sorted(int(s) for s in part[part["shots"] == shot]["seed"].unique())
seed = db.linked(c3, "selectbox", "Seed", seeds, "seed", seeds[0] if seeds else None)
sel = part[(part["shots"] == shot) & (part["seed"] == seed)]
levels_all = sorted(int(v) for v in sel["level"].unique())
levels = db.linked(st, "multiselect", "Levels", levels_all, "levels", levels_all, format_func=lambda lv: f"L{lv}")
source_classes = SOURCE_CLASSES.get(sel["preset"].iloc[0] if len(sel) else "mini", [])

records = [r for r in (db.find_record(sel, level=lv) for lv in levels) if r is not None and r.get("prompt_png")]
st.subheader("Learned prompts across sparsity")
view = st.radio("Display", list(prompt_plots.PROMPT_VIEWS), key="display", bind="query-params", horizontal=True,
                help="; ".join(f"{k}: {v}" for k, v in prompt_plots.PROMPT_VIEWS.items()))


def shown(rec) -> np.ndarray:
    return prompt_plots.prompt_view(prompt_plots.decode_png(rec["prompt_png"]), view)


def moved(rec) -> str:
    shift = rec.get("prompt_shift")
    return "" if shift is None else f" · moved {255 * shift:.0f}/255"


if records:
    items = [(f"L{r['config']['level']} {100 * r['remaining_fraction']:.1f}% · acc "
              f"{100 * r['metrics']['accuracy']:.1f}%{moved(r)}", shown(r)) for r in records]
    charts.show(prompt_plots.image_grid(items, cols=5), "prompts")
    st.caption("The trainable border (sigmoid of the program) on the model's input canvas; the image area is "
               f"shown black. Same family, seed and shots, one ticket per level. Display: {prompt_plots.PROMPT_VIEWS[view]}. "
               "'moved' is the mean |prompt - grey| over the border.")
else:
    st.info("No stored prompt for these levels.")

st.subheader("Across shot counts")
lv_shots = db.linked(st, "selectbox", "Level for the shot comparison", levels_all, "shots_level",
                     levels_all[0] if levels_all else None, format_func=lambda lv: f"L{lv}")
shots_all = plots.shots_order(part["shots"].unique())
by_shot = [r for r in (db.find_record(part, level=lv_shots, shots=s, seed=seed) or db.find_record(part, level=lv_shots, shots=s)
                       for s in shots_all) if r is not None and r.get("prompt_png")]
if by_shot:
    charts.show(prompt_plots.image_grid([(f"{plots.shots_label(r['config']['shots'])} · acc "
                                         f"{100 * r['metrics']['accuracy']:.1f}%{moved(r)}", shown(r))
                                        for r in by_shot], cols=5), "prompts_shots")

st.subheader("The prompt applied to target images")
level_opts = [r["config"]["level"] for r in records] or levels_all
level = db.linked(st, "selectbox", "Level", level_opts, "level", level_opts[0] if level_opts else None,
                  format_func=lambda lv: f"L{lv}")
rec = db.find_record(sel, level=level)


def show_applied(rec):
    examples, err = target_examples(ds)
    if examples is None:
        st.warning(f"Target images unavailable: {err}")
        return
    images, labels = examples
    prompt = prompt_plots.decode_png(rec["prompt_png"])
    try:
        composed = prompt_plots.apply_prompt(prompt, images, rec["config"]["image_size"])
    except ValueError as err:  # a bundle's prompt that does not fit its own config
        st.warning(f"This run's prompt cannot be applied: {err}.")
        return
    charts.show(prompt_plots.image_grid([(f"target: {lab}", img) for lab, img in zip(labels, composed)], cols=6), "applied")
    st.caption(f"Test images resized to {rec['config']['image_size']}px, zero-padded into the "
               f"{prompt.shape[0]}px canvas, plus the learned border: what the frozen model sees "
               "(before normalisation).")


if rec is not None and rec.get("prompt_png"):
    show_applied(rec)

st.subheader("Label mapping: target class → source class")
mapped = drawable([db.find_record(sel, level=lv) for lv in levels if db.find_record(sel, level=lv)],
                  lambda rs: prompt_plots.mapping_table(rs, source_classes))
table = prompt_plots.mapping_table(mapped, source_classes)
if not table.empty:
    st.dataframe(table, width="stretch")
if rec is not None and rec.get("mapping_history") and drawable(
        [rec], lambda rs: prompt_plots.mapping_history_figure(rs[0], source_classes)):
    charts.show(prompt_plots.mapping_history_figure(rec, source_classes), "mapping_history")
    st.caption(f"ILM recomputes the mapping at the start of every epoch (level L{level}); a colour change along a "
               "row is a reassignment.")
