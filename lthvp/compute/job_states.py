"""What a job is, below the queue that stores jobs and the claims that take them: its states and
key prefix, the check that a queued job can run, and the exception that stops a cancelled run.
(``lthvp.compute.jobs`` re-exports these names.)"""

from __future__ import annotations

from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve

QUEUED, RUNNING, DONE, FAILED, CANCELLED, CRASHED = "queued", "running", "done", "failed", "cancelled", "crashed"
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, CANCELLED, CRASHED)
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, CRASHED)
JOB, WORKER = "job:", "worker:"  # key prefixes


class JobCancelled(Exception):
    """Raised inside a run's progress callback when its job was cancelled."""


def check_job(job: dict) -> tuple[RunConfig | None, str | None]:
    """(config, None) for a runnable job, else (None, one-line reason): a hand-written job must not
    reach the runner (a missing key there killed the worker) nor run a config other than its id."""
    try:
        cfg = resolve(RunConfig.from_dict(job["config"]))
    except Exception as err:  # anything a bad config raises: missing keys, wrong types, unknown names
        return None, " ".join(f"{type(err).__name__}: {err}".split())[:300]
    return (cfg, None) if cfg.hash() == job["id"] else (None, f"its config hashes to {cfg.hash()}, not to its id")
