"""Run: choose a grid of runs, see what is cached, submit; the queue shows every job live.

The page never trains: it writes jobs into the queue (lthvp.compute.jobs) and background workers
(`python -m lthvp worker`) run them. Identical requests share one job (job id = config hash).
"""

import getpass

import streamlit as st

from lthvp.compute import run_plan
from lthvp.data.catalog import TARGETS
from lthvp.results.config import ARMS
from lthvp.results.presets import PRESETS
from lthvp.results.shots import options as shot_options
from lthvp.ui import access, app_frame, arm_views
from lthvp.ui import dashboard as db
from lthvp.ui import plots, queue_panel, run_budget
from lthvp.ui.text import plain

app_frame.ensure_frame()

st.title("Run experiments")
operator = access.gate()  # viewers see everything, submit nothing
try:
    queue = db.queue()
except ValueError as err:  # a damaged job queue: say how to recover instead of a traceback
    st.error(str(err))
    st.stop()
store = db.store()
c0, cf, c1, c2, c3 = st.columns([1, 1, 1, 1, 2])
preset = c0.selectbox("Preset", list(PRESETS), key="r_preset", bind="query-params",
                      help="mini: ResNet-20 on Fashion-MNIST (CPU); paper: ImageNet ResNet-50 (GPU server)")
families = db.family_choices(preset)
family_id = db.linked(cf, "selectbox", "Ticket family", families, "r_family", families[0] if families else None,
                      format_func=lambda f: "legacy" if f is None else f"family {f}",
                      help="v2 families: the study's replicated ticket families (step budget, few-shot validation); "
                           "legacy: the first single family, with the v1 protocol")
family = db.family_levels(preset, family_id)
if not family["ticket"]:
    st.info(f"No ticket family for the {preset} preset yet: build one with "
            + ("`python -m lthvp tickets --preset mini`" if preset == "mini" else
               "`python -m lthvp paper one-shot|import|imp ...` (docs/PAPER.md)"))
ds = db.linked(c1, "selectbox", "Target dataset", TARGETS[preset], "r_ds", TARGETS[preset][0])
arms_built = [a for a in ARMS if family.get(a)] or ["ticket"]  # in the study's order, IMP first
arm = db.linked(c2, "selectbox", "Arm", arms_built, "r_arm", "ticket" if "ticket" in arms_built else arms_built[0],
                help="the arms this family has built (tickets --arm ... --family): "
                     + "; ".join(f"{a}: {arm_views.arm_name(a)}" for a in arms_built)
                     + ". Level L of a pruning arm has IMP level L's remaining weights; of quant8/quant4, IMP level L's "
                       "mask with int8/int4 weights")
level_opts = family.get(arm) or []
levels = db.linked(c3, "multiselect", "Levels", level_opts, "r_levels", level_opts[:1],
                   format_func=lambda lv: f"L{lv}",
                   help=f"{arm} levels whose files exist in the family; remaining weights (IMP level L): "
                             + ", ".join(f"L{lv} {100 * family['remaining'].get(lv, 0.8 ** lv):.1f}%" for lv in level_opts))
c4, c5, c6, c7 = st.columns([1, 2, 1, 1])
methods = c4.multiselect("Methods", db.METHODS, default=["lp"], key="r_methods", bind="query-params",
                         format_func=lambda m: plots.METHOD_NAMES[m])
shots = c5.multiselect("Shots per class", shot_options(PRESETS[preset]), default=["1"], key="r_shots", bind="query-params",
                       format_func=plots.shots_label)
seeds = c6.multiselect("Seeds", list(range(10)), default=[0], key="r_seeds", bind="query-params")
budget = run_budget.budget_controls(c7, PRESETS[preset], family_id, methods)
user = st.text_input("Your name (shown in the queue)", value=getpass.getuser(), key="user", bind="query-params",
                     max_chars=64)

configs, errors = run_budget.grid(levels, methods, shots, seeds, budget, preset=preset, family=family_id, dataset=ds,
                                  arm=arm)
notes = st.container()  # one slot whatever it holds, so the queue below never shifts (no doubled rows)
for e in errors:
    notes.warning(e)
plan = run_plan.plan(configs, store, queue, errors)
todo = plan.todo
st.markdown(f"**{len(plan.configs)} runs selected**: {len(plan.cached)} already in the store, {len(plan.pending)} "
            f"queued or running (shared with whoever asked first), **{len(todo)} to train**.")
nothing = st.container()
if not plan.configs:
    missing = [name for name, chosen in (("a level", levels), ("a method", methods), ("a shot count", shots),
                                         ("a seed", seeds)) if not chosen]
    nothing.caption("Nothing to run: " + (f"choose {', '.join(missing)}." if missing else
                                     f"no {arm} level is built for this family."))

if st.button(f"Submit {len(todo)} run{'s' if len(todo) != 1 else ''}", type="primary",
             disabled=not todo or operator is None, key="submit") \
        and access.record(operator, "queue", f"{len(todo)} run(s): {' '.join(todo)}", name=user):
    subs = queue.submit_many(plan.to_submit(), user=user or getpass.getuser(), store=store)
    new = sum(s.status in ("queued", "requeued") for s in subs)
    shared = sum(s.status == "existing" for s in subs)
    st.session_state["submit_msg"] = (f"Queued {new} job(s) for {plain(user or getpass.getuser())}"
                                      + (f"; {shared} were already queued by someone else and are shared." if shared else "."))
    st.session_state["worker_note"] = db.ensure_worker(queue, db.store_dir())
    st.rerun()
messages = st.container()  # always drawn (possibly empty): the queue's place on the page stays fixed
if "submit_msg" in st.session_state:
    messages.success(st.session_state.pop("submit_msg"), icon=":material/schedule:")

note = st.session_state.pop("worker_note", None) or db.ensure_worker(queue, db.store_dir())
if note:
    messages.info(note, icon=":material/memory:")


queue_panel.show(queue, user)
st.caption("Training runs in background worker processes (`python -m lthvp worker`), never in this page: jobs "
           "survive reloads and closed browsers. Finished results appear on the other pages.")
