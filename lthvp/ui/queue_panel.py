"""The job queue as the Run page shows it: every job's state, progress, result and an Open link,
refreshed every 2 s while anything is queued or running. User-supplied text (names, errors that
quote input) is written as plain text, never Markdown."""

from __future__ import annotations

import time

from lthvp.compute import job_log
from lthvp.compute import jobs as J
from lthvp.ui import access
from lthvp.ui import dashboard as db
from lthvp.ui import job_status, plots

STATE_COLORS = {J.QUEUED: "gray", J.RUNNING: "blue", J.DONE: "green", J.FAILED: "red", J.CANCELLED: "orange",
                J.CRASHED: "violet"}
SHOWN = 25  # newest jobs listed; the rest are counted
SHOWN_VERSION = "_queue_version_shown"  # session key: the queue version the sidebar's counts were read at


def ago(t: float | None, now: float | None = None) -> str:
    if not t:
        return ""
    s = max(0.0, (now if now is not None else time.time()) - t)
    return f"{s:.0f} s ago" if s < 90 else (f"{s / 60:.0f} min ago" if s < 5400 else f"{s / 3600:.1f} h ago")


def describe(cfg: dict) -> str:
    """One line naming a job's run: method, dataset, level and arm, shots, seed, budget, family."""
    arm = "" if cfg["arm"] == "ticket" else f" {cfg['arm']}"
    return (f"{plots.METHOD_NAMES[cfg['method']]} · {cfg['dataset']} · L{cfg['level']}{arm} · "
            f"{plots.shots_label(cfg['shots'])} · seed {cfg['seed']} · "
            + ("no training (prompt frozen)" if cfg["method"] == "map" else f"{cfg['steps']} steps"
               if cfg.get("steps") is not None else f"{cfg['epochs']} epoch{'' if cfg['epochs'] == 1 else 's'}")
            + ("" if cfg.get("family") is None else f" · family {cfg['family']}"))


def workers_line(workers: list[dict], n_jobs: int, active: bool) -> str:
    names = ", ".join(f"`{w['id']}`" + (f" (GPU {w['gpu']})" if w.get("gpu") else "")
                      + (f" (Dask {w['dask']}, up to {w.get('in_flight')} jobs)" if w.get("dask") else "")
                      + (f" running `{w['job']}`" if w.get("job") else " idle") for w in workers)
    return ((f"{len(workers)} live worker(s): {names}" if workers else "no live worker")
            + f" · {n_jobs} job(s)" + (" · refreshing every 2 s" if active else ""))


def counts_text(counts: dict) -> str:
    """'1 running, 2 queued': the one wording the sidebar and the panel both use."""
    return f"{counts.get(J.RUNNING, 0)} running, {counts.get(J.QUEUED, 0)} queued"


def show(queue: J.JobQueue, user: str) -> None:
    """The queue panel; polls (a Streamlit fragment every 2 s) only while work is queued or running."""
    import streamlit as st

    counts = queue.counts()
    polling = counts[J.QUEUED] + counts[J.RUNNING] > 0
    st.fragment(run_every="2s" if polling else None)(_panel)(queue, user, polling)


def _panel(queue: J.JobQueue, user: str, polling: bool) -> None:
    import streamlit as st

    queue.reap()
    version = queue.version  # read before the jobs: a change after it is caught by the next poll
    jobs = queue.jobs()
    active = [j for j in jobs if j["state"] in J.ACTIVE]
    if polling and not active:
        st.rerun()  # everything finished: a full rerun refreshes the page and stops polling
    workers = queue.workers()
    # everything a row needs is read before any row is drawn, in a fixed number of elements, so a
    # refresh replaces the rows in place (no row drawn twice while the list redraws)
    results, operator = db.results(), access.current()  # operator: None for a viewer (no cancel, no clear)
    by_hash = results.set_index("hash") if not results.empty else None
    shown = sorted(jobs, key=lambda j: -j["seq"] if isinstance(j.get("seq"), (int, float)) else 0)[:SHOWN]
    logs = {j["id"]: job_log.lines(queue, j["id"]) for j in shown}
    note = db.ensure_worker(queue, db.store_dir()) if active and not workers else None  # retry from the poll loop
    st.subheader("Queue")
    st.caption(counts_text({J.RUNNING: sum(j["state"] == J.RUNNING for j in jobs),
                            J.QUEUED: sum(j["state"] == J.QUEUED for j in jobs)}) + " · "
               + workers_line(workers, len(jobs), bool(active)) + (f" · {note}" if note else ""))
    if not jobs:
        st.caption("No jobs yet.")
        return
    for job in shown:
        _job_row(st, queue, job, by_hash, user, operator, logs[job["id"]])
    if len(jobs) > SHOWN:
        st.caption(f"{len(jobs) - SHOWN} older jobs not shown.")
    finished = [j for j in jobs if j["state"] in J.FINISHED]
    if finished and st.button(f"Clear {len(finished)} finished job(s) from the list", key="clear",
                              disabled=operator is None) \
            and access.record(operator, "clear", " ".join(j["id"] for j in finished), name=user):
        for j in finished:
            queue.forget(j["id"])
            job_log.forget(queue, j["id"])
        st.rerun()
    drawn = st.session_state.get(SHOWN_VERSION)
    if drawn is not None and version != drawn:
        st.rerun(scope="app")  # a job changed state since the sidebar counted: redraw both from one count


def _job_row(st, queue: J.JobQueue, job: dict, by_hash, user: str, operator: access.Operator | None,
             log: list[dict]) -> None:
    row = st.container(border=True, key=f"job_{job['id']}")
    a, b, c, d = row.columns([1, 3, 3, 1], vertical_alignment="center")
    cancelled_now = False
    if job["state"] in J.ACTIVE and d.button("Cancel", key=f"cancel_{job['id']}",
                                             disabled=bool(job.get("cancel_requested")) or operator is None,
                                             help="queued: removed now; running: stops at the end of the current "
                                                  "round or epoch"):
        if access.record(operator, "cancel", f"{job['id']} ({describe(job['config'])})", name=user):
            job = {**job, **(queue.cancel(job["id"], user=user) or {})}  # drawn below at once, no wait
            cancelled_now = True
            st.toast(f"Cancel requested: {describe(job['config'])}", icon=":material/cancel:")
    state = job["state"]
    a.badge("cancelling" if state == J.RUNNING and job.get("cancel_requested") else state,
            color="orange" if job.get("cancel_requested") else STATE_COLORS.get(state, "gray"))
    b.markdown(f"**{describe(job['config'])}**  \n`{job['id']}` · {ago(job['submitted_at'])}")
    b.text(f"by {', '.join(job['submitters'])}")  # user text: plain text, never Markdown
    if state == J.RUNNING:
        c.progress(db.fraction_done(job), text=db.describe_progress(job))
        c.caption("cancel requested: stops at the end of the current round" if job.get("cancel_requested")
                  else job_status.duration_text(job_status.eta_seconds(job, log)))
    elif state == J.DONE and by_hash is not None and job["id"] in by_hash.index:
        r = by_hash.loc[job["id"]]
        c.markdown(f"accuracy **{100 * r['accuracy']:.1f}%** · ECE **{100 * r['ece']:.1f}%** · {r['seconds']:.0f} s")
        d.page_link("pages/run-detail.py", label="Open", icon=":material/search:", query_params={"hash": job["id"]})
    elif state in (J.FAILED, J.CRASHED, J.CANCELLED):
        c.text(("cancelled just now" if cancelled_now else None) or job.get("error") or state)  # plain text
    else:
        c.caption(db.describe_progress(job))
    if log:
        with row.expander("Log", icon=":material/subject:"):
            st.code(job_status.log_text(log), language=None)
