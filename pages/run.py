"""Run: choose a grid of runs, see what is cached, submit; the queue shows every job live.

The page never trains: it writes jobs into the queue (lthvp.compute.jobs) and background workers
(`python -m lthvp worker`) run them. Identical requests share one job (job id = config hash).
"""

import getpass
import time
from itertools import product

import streamlit as st

from lthvp.compute import jobs as J
from lthvp.data.catalog import TARGETS
from lthvp.results.config import RunConfig
from lthvp.results.presets import PRESETS, resolve
from lthvp.ui import app_frame
from lthvp.ui import dashboard as db
from lthvp.ui import plots
from lthvp.ui.text import plain

app_frame.ensure_frame()

STATE_COLORS = {J.QUEUED: "gray", J.RUNNING: "blue", J.DONE: "green", J.FAILED: "red", J.CANCELLED: "orange",
                J.CRASHED: "violet"}
SHOWN = 25

st.title("Run experiments")
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
arm = c2.selectbox("Arm", ["ticket", "random"], key="r_arm", bind="query-params",
                   help="ticket: IMP lottery ticket; random: random pruning at the same sparsity")
level_opts = family["ticket"] if arm == "ticket" else family["random"]
levels = db.linked(c3, "multiselect", "Levels", level_opts, "r_levels", level_opts[:1],
                   format_func=lambda lv: f"L{lv}",
                   help=f"levels whose ticket files exist in tickets/{preset}; remaining weights: "
                             + ", ".join(f"L{lv} {100 * family['remaining'].get(lv, 0.8 ** lv):.1f}%" for lv in level_opts))
c4, c5, c6, c7 = st.columns([1, 2, 1, 1])
methods = c4.multiselect("Methods", db.METHODS, default=["lp"], key="r_methods", bind="query-params",
                         format_func=lambda m: plots.METHOD_NAMES[m])
shots = c5.multiselect("Shots per class", db.SHOTS, default=["1"], key="r_shots", bind="query-params",
                       format_func=plots.shots_label)
seeds = c6.multiselect("Seeds", list(range(10)), default=[0], key="r_seeds", bind="query-params")
epochs = c7.number_input("Epochs (0 = preset)", min_value=0, max_value=500, value=0, step=1, key="r_epochs",
                         bind="query-params")
user = st.text_input("Your name (shown in the queue)", value=getpass.getuser(), key="user", bind="query-params",
                     max_chars=64)

configs = []
errors = []
for d, lv, m, sh, sd in product([ds], levels, methods, shots, seeds):
    try:
        configs.append(RunConfig(preset=preset, family=family_id, dataset=d, method=m, level=int(lv), shots=sh,
                                 seed=int(sd), arm=arm, epochs=int(epochs) or None))
    except ValueError as err:
        errors.append(str(err))
for e in sorted(set(errors)):
    st.warning(e)

hashes = {resolve(c).hash(): c for c in configs}
jobs_by_id = {j["id"]: j for j in queue.jobs()}
cached = [h for h in hashes if store.has(h)]
pending = [h for h in hashes if h not in cached and jobs_by_id.get(h, {}).get("state") in J.ACTIVE]
todo = [h for h in hashes if h not in cached and h not in pending]
st.markdown(f"**{len(hashes)} runs selected**: {len(cached)} already in the store, {len(pending)} queued or "
            f"running (shared with whoever asked first), **{len(todo)} to train**.")
if not hashes:
    missing = [name for name, chosen in (("a level", levels), ("a method", methods), ("a shot count", shots),
                                         ("a seed", seeds)) if not chosen]
    st.caption("Nothing to run: " + (f"choose {', '.join(missing)}." if missing else
                                     f"no {arm} level is built for this family."))

if st.button(f"Submit {len(todo)} run{'s' if len(todo) != 1 else ''}", type="primary", disabled=not todo,
             key="submit"):
    subs = queue.submit_many([hashes[h] for h in todo], user=user or getpass.getuser(), store=store)
    new = sum(s.status in ("queued", "requeued") for s in subs)
    shared = sum(s.status == "existing" for s in subs)
    st.session_state["submit_msg"] = (f"Queued {new} job(s) for {plain(user or getpass.getuser())}"
                                      + (f"; {shared} were already queued by someone else and are shared." if shared else "."))
    st.session_state["worker_note"] = db.ensure_worker(queue, db.store_dir())
    st.rerun()
if "submit_msg" in st.session_state:
    st.success(st.session_state.pop("submit_msg"), icon=":material/schedule:")

note = st.session_state.pop("worker_note", None) or db.ensure_worker(queue, db.store_dir())
if note:
    st.info(note, icon=":material/memory:")


def ago(t):
    if not t:
        return ""
    s = max(0, time.time() - t)
    return f"{s:.0f} s ago" if s < 90 else (f"{s / 60:.0f} min ago" if s < 5400 else f"{s / 3600:.1f} h ago")


def describe(cfg: dict) -> str:
    arm = "" if cfg["arm"] == "ticket" else " random"
    return (f"{plots.METHOD_NAMES[cfg['method']]} · {cfg['dataset']} · L{cfg['level']}{arm} · "
            f"{plots.shots_label(cfg['shots'])} · seed {cfg['seed']} · "
            + (f"{cfg['steps']} steps" if cfg.get("steps") is not None else f"{cfg['epochs']} ep")
            + ("" if cfg.get("family") is None else f" · family {cfg['family']}"))


counts = queue.counts()
polling = counts[J.QUEUED] + counts[J.RUNNING] > 0


@st.fragment(run_every="2s" if polling else None)
def queue_panel():
    queue.reap()
    jobs = queue.jobs()
    active = [j for j in jobs if j["state"] in J.ACTIVE]
    if polling and not active:
        st.rerun()  # everything finished: full rerun refreshes the page and stops polling
    workers = queue.workers()
    if active and not workers:  # retry the start from the poll loop: a queued job never waits forever
        note = db.ensure_worker(queue, db.store_dir())
        if note:
            st.caption(note)
    st.subheader("Queue")
    wtxt = ", ".join(f"`{w['id']}`" + (f" (GPU {w['gpu']})" if w.get("gpu") else "")
                     + (f" (Dask {w['dask']}, up to {w.get('in_flight')} jobs)" if w.get("dask") else "") +
                     (f" running `{w['job']}`" if w.get("job") else " idle") for w in workers)
    st.caption((f"{len(workers)} live worker(s): {wtxt}" if workers else "no live worker") +
               f" · {len(jobs)} job(s)" + (" · refreshing every 2 s" if active else ""))
    if not jobs:
        st.caption("No jobs yet.")
        return
    results = db.results()
    by_hash = results.set_index("hash") if not results.empty else None
    recent = sorted(jobs, key=lambda j: (j["state"] not in J.ACTIVE, -j["seq"]))[:SHOWN]
    for job in recent:
        row = st.container(border=True, key=f"job_{job['id']}")
        a, b, c, d = row.columns([1, 3, 3, 1], vertical_alignment="center")
        a.badge(job["state"], color=STATE_COLORS.get(job["state"], "gray"))
        b.markdown(f"**{describe(job['config'])}**  \n`{job['id']}` · {ago(job['submitted_at'])}")
        b.text(f"by {', '.join(job['submitters'])}")  # user text: plain text, never Markdown
        if job["state"] == J.RUNNING:
            c.progress(db.fraction_done(job), text=db.describe_progress(job))
        elif job["state"] == J.DONE and by_hash is not None and job["id"] in by_hash.index:
            r = by_hash.loc[job["id"]]
            c.markdown(f"accuracy **{100 * r['accuracy']:.1f}%** · ECE **{100 * r['ece']:.1f}%** · "
                       f"{r['seconds']:.0f} s")
            d.page_link("pages/run_detail.py", label="Open", icon=":material/search:",
                        query_params={"hash": job["id"]})
        elif job["state"] in (J.FAILED, J.CRASHED, J.CANCELLED):
            c.text(job.get("error") or job["state"])  # error text can quote user input: plain text
        else:
            c.caption(db.describe_progress(job))
        if job["state"] in J.ACTIVE:
            if d.button("Cancel", key=f"cancel_{job['id']}",
                        disabled=bool(job.get("cancel_requested")),
                        help="queued: removed now; running: stops at the end of the epoch"):
                queue.cancel(job["id"], user=user)
                st.rerun()
    if len(jobs) > SHOWN:
        st.caption(f"{len(jobs) - SHOWN} older jobs not shown.")
    finished = [j for j in jobs if j["state"] in J.FINISHED]
    if finished and st.button(f"Clear {len(finished)} finished job(s) from the list", key="clear"):
        for j in finished:
            queue.forget(j["id"])
        st.rerun()


queue_panel()
st.caption("Training runs in background worker processes (`python -m lthvp worker`), never in this page: jobs "
           "survive reloads and closed browsers. Finished results appear on the other pages.")
