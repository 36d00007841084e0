"""The job queue as the Run page shows it: every job's state, progress, result and an Open link,
refreshed every 2 s while anything is queued or running. User-supplied text (names, errors that
quote input) is written as plain text, never Markdown."""

from __future__ import annotations

import time

from lthvp.compute import jobs as J
from lthvp.ui import dashboard as db
from lthvp.ui import plots

STATE_COLORS = {J.QUEUED: "gray", J.RUNNING: "blue", J.DONE: "green", J.FAILED: "red", J.CANCELLED: "orange",
                J.CRASHED: "violet"}
SHOWN = 25  # newest jobs listed; the rest are counted


def ago(t: float | None, now: float | None = None) -> str:
    if not t:
        return ""
    s = max(0.0, (now if now is not None else time.time()) - t)
    return f"{s:.0f} s ago" if s < 90 else (f"{s / 60:.0f} min ago" if s < 5400 else f"{s / 3600:.1f} h ago")


def describe(cfg: dict) -> str:
    """One line naming a job's run: method, dataset, level and arm, shots, seed, budget, family."""
    arm = "" if cfg["arm"] == "ticket" else " random"
    return (f"{plots.METHOD_NAMES[cfg['method']]} · {cfg['dataset']} · L{cfg['level']}{arm} · "
            f"{plots.shots_label(cfg['shots'])} · seed {cfg['seed']} · "
            + (f"{cfg['steps']} steps" if cfg.get("steps") is not None else f"{cfg['epochs']} ep")
            + ("" if cfg.get("family") is None else f" · family {cfg['family']}"))


def workers_line(workers: list[dict], n_jobs: int, active: bool) -> str:
    names = ", ".join(f"`{w['id']}`" + (f" (GPU {w['gpu']})" if w.get("gpu") else "")
                      + (f" (Dask {w['dask']}, up to {w.get('in_flight')} jobs)" if w.get("dask") else "")
                      + (f" running `{w['job']}`" if w.get("job") else " idle") for w in workers)
    return ((f"{len(workers)} live worker(s): {names}" if workers else "no live worker")
            + f" · {n_jobs} job(s)" + (" · refreshing every 2 s" if active else ""))


def show(queue: J.JobQueue, user: str) -> None:
    """The queue panel; polls (a Streamlit fragment every 2 s) only while work is queued or running."""
    import streamlit as st

    counts = queue.counts()
    polling = counts[J.QUEUED] + counts[J.RUNNING] > 0
    st.fragment(run_every="2s" if polling else None)(_panel)(queue, user, polling)


def _panel(queue: J.JobQueue, user: str, polling: bool) -> None:
    import streamlit as st

    queue.reap()
    jobs = queue.jobs()
    active = [j for j in jobs if j["state"] in J.ACTIVE]
    if polling and not active:
        st.rerun()  # everything finished: a full rerun refreshes the page and stops polling
    workers = queue.workers()
    if active and not workers:  # retry the start from the poll loop: a queued job never waits forever
        note = db.ensure_worker(queue, db.store_dir())
        if note:
            st.caption(note)
    st.subheader("Queue")
    st.caption(workers_line(workers, len(jobs), bool(active)))
    if not jobs:
        st.caption("No jobs yet.")
        return
    results = db.results()
    by_hash = results.set_index("hash") if not results.empty else None
    for job in sorted(jobs, key=lambda j: (j["state"] not in J.ACTIVE, -j["seq"]))[:SHOWN]:
        _job_row(st, queue, job, by_hash, user)
    if len(jobs) > SHOWN:
        st.caption(f"{len(jobs) - SHOWN} older jobs not shown.")
    finished = [j for j in jobs if j["state"] in J.FINISHED]
    if finished and st.button(f"Clear {len(finished)} finished job(s) from the list", key="clear"):
        for j in finished:
            queue.forget(j["id"])
        st.rerun()


def _job_row(st, queue: J.JobQueue, job: dict, by_hash, user: str) -> None:
    row = st.container(border=True, key=f"job_{job['id']}")
    a, b, c, d = row.columns([1, 3, 3, 1], vertical_alignment="center")
    a.badge(job["state"], color=STATE_COLORS.get(job["state"], "gray"))
    b.markdown(f"**{describe(job['config'])}**  \n`{job['id']}` · {ago(job['submitted_at'])}")
    b.text(f"by {', '.join(job['submitters'])}")  # user text: plain text, never Markdown
    if job["state"] == J.RUNNING:
        c.progress(db.fraction_done(job), text=db.describe_progress(job))
    elif job["state"] == J.DONE and by_hash is not None and job["id"] in by_hash.index:
        r = by_hash.loc[job["id"]]
        c.markdown(f"accuracy **{100 * r['accuracy']:.1f}%** · ECE **{100 * r['ece']:.1f}%** · {r['seconds']:.0f} s")
        d.page_link("pages/run_detail.py", label="Open", icon=":material/search:", query_params={"hash": job["id"]})
    elif job["state"] in (J.FAILED, J.CRASHED, J.CANCELLED):
        c.text(job.get("error") or job["state"])  # error text can quote user input: plain text
    else:
        c.caption(db.describe_progress(job))
    if job["state"] in J.ACTIVE and d.button("Cancel", key=f"cancel_{job['id']}",
                                             disabled=bool(job.get("cancel_requested")),
                                             help="queued: removed now; running: stops at the end of the epoch"):
        queue.cancel(job["id"], user=user)
        st.rerun()
