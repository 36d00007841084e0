"""Helpers shared by the Streamlit pages: store/queue handles, cached tables, store seeding,
starting a worker. The Streamlit-free parts (``start_worker``, ``family_levels``) are importable
without a running app."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from lthvp.compute import jobs as J
from lthvp.compute.jobs import JobQueue
from lthvp.paths import REPO_ROOT, default_store_dir, shipped_bundle_dir  # noqa: F401  (pages call db.shipped_bundle_dir)
from lthvp.results import shots
from lthvp.results.presets import get_preset
from lthvp.results.seeding import open_seeded_store
from lthvp.results.store import ResultStore
from lthvp.ui.seed_progress import banner_messages, seed_with_progress
from lthvp.ui.family_select import family_filter, several_families, single_family  # noqa: F401  (pages use them)
from lthvp.ui.linked_widgets import linked  # noqa: F401  (pages call db.linked)

METHODS = ["vp", "map", "lp"]


def is_hash(value) -> bool:
    """A result hash (16 lowercase hex digits), e.g. from a chart point's customdata."""
    return isinstance(value, str) and len(value) == 16 and all(c in "0123456789abcdef" for c in value)


def store_dir() -> Path:
    return Path(default_store_dir()).resolve()


# --- Streamlit-free -----------------------------------------------------------------------------
def family_choices(preset: str = "mini") -> list[int | None]:
    """The preset's ticket families that have built levels: v2 families (source seeds) first, then
    the legacy single family (None)."""
    from lthvp.tickets.family_index import FamilyIndex, family_dir, family_seeds

    p = get_preset(preset)
    return [f for f in family_seeds(p.family_dir) + [None] if FamilyIndex(family_dir(p.family_dir, f)).built()["ticket"]]


def family_levels(preset: str = "mini", family: int | None = None) -> dict:
    """Built levels of one family: {'ticket': [...], 'random': [...], 'remaining': {level: frac}}."""
    from lthvp.tickets.family_index import FamilyIndex, family_dir

    return FamilyIndex(family_dir(get_preset(preset).family_dir, family)).built()


def source_accuracies(preset: str = "mini") -> pd.DataFrame:
    """Each ticket's own source-task test accuracy (from family.json), per family, arm and level."""
    from lthvp.tickets.family_index import ARM_KEYS, FamilyIndex, family_dir, family_seeds

    p = get_preset(preset)
    rows = []
    for seed in [None] + family_seeds(p.family_dir):
        try:
            info = FamilyIndex(family_dir(p.family_dir, seed)).info
        except (OSError, ValueError):
            continue
        for arm, key in ARM_KEYS.items():
            for level, row in (info.get(key) or {}).items():
                rows.append({"family": "legacy" if seed is None else str(seed), "arm": arm, "level": int(level),
                             "remaining %": round(100 * row["remaining"]["all_prunable"], 2),
                             "source test accuracy %": round(100 * row["source_test_accuracy"], 2)})
    return pd.DataFrame(rows)


def start_worker(directory: Path, threads: int | None = None, once: bool = True) -> subprocess.Popen:
    """Start ``python -m lthvp worker`` detached from the app (own session, log file in the store)."""
    directory = Path(directory)
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    n = threads or max(1, (os.cpu_count() or 2) - 1)
    env.setdefault("OMP_NUM_THREADS", str(n))
    env.setdefault("LTHVP_WORKER_THREADS", str(n))
    log = open(logs / f"worker-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log", "ab")
    cmd = [sys.executable, "-m", "lthvp", "worker", "--store", str(directory)] + (["--once"] if once else [])
    proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return proc


def autostart_enabled() -> bool:
    return os.environ.get("LTHVP_AUTOSTART_WORKER", "1") != "0"


def ensure_worker(queue: JobQueue, directory: Path) -> str | None:
    """Start one worker when jobs are queued and no live worker heartbeats; says what it did."""
    if not queue.counts().get("queued"):
        return None
    if queue.workers():
        return None
    if not autostart_enabled():
        return ("Jobs are queued but no worker is alive, and automatic start is off "
                "(LTHVP_AUTOSTART_WORKER=0). Start one: `python -m lthvp worker`.")
    if not queue.try_mark_spawn():
        return "A background worker is starting."
    proc = start_worker(directory)
    queue.record_spawn(proc.pid)
    return (f"No live worker was found, so the app started one (pid {proc.pid}, "
            f"`python -m lthvp worker --once`; it exits when the queue is empty).")


def describe_progress(job: dict) -> str:
    """One line for the queue: 'step 160/800 (round 8/50) · val acc 81.2% · loss 0.412' for a step
    budget, 'epoch 3/20 · ...' for an epoch budget."""
    from lthvp.compute.job_log import progress_text

    if job["state"] == J.QUEUED:
        return "waiting for a worker"
    if not job.get("progress"):
        return "starting" if job["state"] == J.RUNNING else ""
    return progress_text(job["progress"])


def fraction_done(job: dict) -> float:
    from lthvp.compute.job_log import progress_fraction

    return 1.0 if job["state"] == J.DONE else (progress_fraction(job.get("progress")) or 0.0)


# --- Streamlit ----------------------------------------------------------------------------------
def _st():
    import streamlit as st

    return st


def _resources():
    st = _st()

    @st.cache_resource(show_spinner=False)
    def open_store(directory: str):
        return open_seeded_store(directory)

    @st.cache_resource(show_spinner=False)
    def open_queue(directory: str):
        return JobQueue.for_store(directory)

    @st.cache_data(show_spinner=False, max_entries=8)
    def table(directory: str, version: int) -> pd.DataFrame:
        return open_store(directory)[0].table()

    @st.cache_data(show_spinner=False, max_entries=512)
    def record(directory: str, key: str, version: int) -> dict | None:
        return open_store(directory)[0].get(key)

    @st.cache_data(show_spinner="Computing effects…", max_entries=16)
    def effects(directory: str, version: int, metric: str, dataset: str, families: tuple) -> pd.DataFrame:
        from lthvp.analysis.effects import effects as compute
        from lthvp.analysis.pairing import family_keys

        df = results()
        return compute(df[[f in families for f in family_keys(df["family"])]], metric, dataset)

    return open_store, open_queue, table, record, effects


_RES = None


def res():
    global _RES
    if _RES is None:
        _RES = _resources()
    return _RES


def store() -> ResultStore:
    directory = str(store_dir())
    seed_with_progress(directory)  # the first open imports the shipped bundles, with a progress message
    return res()[0](directory)[0]


def seed_messages() -> list[str]:
    """The Overview's banner: what the shipped bundles added in this session; failed imports."""
    return banner_messages(res()[0](str(store_dir()))[1])


def queue() -> JobQueue:
    return res()[1](str(store_dir()))


def results() -> pd.DataFrame:
    """The flat results table, re-read only when the store's version changes."""
    s = store()
    df = res()[2](str(store_dir()), s.version)
    if not df.empty:
        df = df.copy()
        df["shots"] = df["shots"].map(shots.text)  # the canonical text (lthvp.results.shots)
    return df


def effects_table(metric: str, dataset: str, shown: pd.DataFrame) -> pd.DataFrame:
    """lthvp.analysis.effects.effects of the families in ``shown`` (the sidebar's choice), computed
    once per store version and choice (seconds for thousands of runs)."""
    from lthvp.analysis.pairing import family_keys

    families = tuple(sorted(set(family_keys(shown["family"]))))
    return res()[4](str(store_dir()), store().version, metric, dataset, families)


def record(key: str) -> dict | None:
    s = store()
    return res()[3](str(store_dir()), key, s.version)


def find_record(df: pd.DataFrame, **match) -> dict | None:
    """The first stored record whose row matches all given column values."""
    if df.empty:
        return None
    mask = pd.Series(True, index=df.index)
    for k, v in match.items():
        mask &= df[k] == (shots.text(v) if k == "shots" else v)
    rows = df[mask].sort_values("created", ascending=False) if "created" in df else df[mask]
    return record(rows["hash"].iloc[0]) if len(rows) else None


def drawn(part: str, draw) -> None:
    """Draw one part of a page; a stored record the page cannot draw (written before the record
    schema checked whole records) gives a warning naming ``part`` ("This run's training curves")
    and the part is skipped, never a page error."""
    try:
        draw()
    except Exception as err:  # st.stop() and reruns are BaseExceptions and pass through
        _st().warning(f"{part} cannot be drawn ({type(err).__name__}); skipped. "
                      "`python -m lthvp store check` lists stored records that fail today's schema.")


def empty_state(what: str = "results") -> None:
    st = _st()
    st.info(f"No {what} in the store yet ({store_dir()}). Import a bundle on the **Bundles** page or "
            "launch runs on the **Run** page.")
    c1, c2 = st.columns(2)
    c1.page_link("pages/bundles.py", label="Bundles: import results", icon=":material/upload:")
    c2.page_link("pages/run.py", label="Run: launch training", icon=":material/play_arrow:")


def results_or_stop() -> pd.DataFrame:
    """The results table (of the family picked in the sidebar); on an empty store, the
    empty-state hints and the end of the page."""
    df = results()
    if df.empty:
        empty_state()
        _st().stop()
    return family_filter(df)


def dataset_select(df: pd.DataFrame, column) -> str:
    """The dataset selector every results page starts with (first: the best-covered dataset)."""
    datasets = sorted(df["dataset"].unique())
    return linked(column, "selectbox", "Dataset", datasets, "ds", df["dataset"].value_counts().idxmax())


def ticket_rows(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The IMP-ticket rows of one dataset (all arms where it has no ticket rows)."""
    part = df[(df["dataset"] == dataset) & (df["arm"] == "ticket")]
    return part if not part.empty else df[df["dataset"] == dataset]


def shot_select(part: pd.DataFrame, column) -> str:
    """One shot count (default: the best-covered one)."""
    shots_all = shots.order(part["shots"].unique())
    return linked(column, "selectbox", "Shots per class", shots_all, "shot", part["shots"].value_counts().idxmax(),
                  format_func=shots.label)
