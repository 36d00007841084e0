"""The one execution path's shared steps: resolve and hash once, skip what is stored, group the
runs that share a frozen model, run a group, put each record once.

plan (:func:`resolve_all`, :func:`pending`) -> queue (``JobQueue.submit``; a claim takes a whole
group, :func:`lthvp.compute.claims.claim_group`) -> executor (in-process :class:`lthvp.compute.worker.Worker`,
a cluster through :class:`lthvp.compute.dask_queue.DaskQueueDrain`), each of which runs a group with
:func:`lthvp.compute.runner.run_batch` and stores with :func:`put_once`. ``sweep`` is "submit and drain"
(:mod:`lthvp.compute.sweep`). Torch-free: the job queue and the Run page import it.
"""

from __future__ import annotations

from typing import Callable, Iterable

from lthvp.compute.job_states import JobCancelled
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve

Progress = Callable[[dict], None]
MAX_GROUP = 8  # prompts trained together at most (memory grows with the group)


def resolve_all(configs: Iterable[RunConfig]) -> dict[str, RunConfig]:
    """hash -> resolved config, in request order, each distinct run once: the only place a
    requested config is resolved and hashed on its way to a run."""
    out: dict[str, RunConfig] = {}
    for cfg in configs:
        resolved = resolve(cfg)
        out.setdefault(resolved.hash(), resolved)
    return out


def pending(resolved: dict[str, RunConfig], store) -> dict[str, RunConfig]:
    """The runs of ``resolved`` whose result the store does not hold yet."""
    return {key: cfg for key, cfg in resolved.items() if not store.has(key)}


def cell_key(cfg: RunConfig) -> str | None:
    """Of a *resolved* config: runs that can train together share it (VP or mapping-only configs
    equal but for their seed: one frozen model of one (family, level, arm), one step plan). None:
    the run trains alone (LP, full data)."""
    return cfg.replace(seed=0).hash() if cfg.method in ("vp", "map") and cfg.shots != "full" else None


def batches(configs: list[RunConfig], max_group: int = MAX_GROUP, key=cell_key) -> list[list[RunConfig]]:
    """The configs in request order, those with an equal ``key`` (not None) gathered into batches
    of at most ``max_group``; every other config is a batch of one."""
    out, open_batch = [], {}
    for cfg in configs:
        k = key(cfg)
        if k is None:
            out.append([cfg])
            continue
        if k not in open_batch or len(open_batch[k]) >= max_group:
            open_batch[k] = []
            out.append(open_batch[k])
        open_batch[k].append(cfg)
    return out


def one_line(err: BaseException | object) -> str:
    """``Type: message`` on one line (whitespace collapsed, shortened), with its cause when one came back."""
    def short(e, limit):
        text = " ".join(str(e).split())
        text = text if len(text) <= limit else text[:limit - 3] + "..."
        return f"{type(e).__name__}: {text}" if text else type(e).__name__

    if not isinstance(err, BaseException):
        return " ".join(str(err).split())[:200]
    cause = err.__cause__
    return short(err, 200) + (f" (caused by {short(cause, 160)})" if cause is not None else "")


STORED, PRESENT, NOT_STORED = "stored", "present", "not stored"


def put_once(store, key: str, record) -> tuple[str, str | None]:
    """Store the record of ``key`` unless the store holds it: (``stored`` | ``present``, None), or
    (``not stored``, one-line reason) for a record that is missing, names another run, or fails
    validation. Every executor ends a run here, so a result is written once, checked."""
    if store.has(key):  # written meanwhile (another worker or client): keep exactly one copy
        return PRESENT, None
    if not isinstance(record, dict):
        return NOT_STORED, f"the run returned no record ({type(record).__name__})"
    if record.get("hash") != key:
        return NOT_STORED, (f"HashMismatch: the run returned {record.get('hash')}, expected {key} "
                            "(different code on the worker?)")
    try:
        store.put(record)  # validated (RunRecord.from_json) and written in one transaction
    except (TypeError, ValueError) as err:  # not plain JSON (e.g. NaN), inconsistent, over budget
        return NOT_STORED, f"not stored: {one_line(err)}"
    return STORED, None


class GroupProgress:
    """Per-run progress callbacks for a group trained in lockstep. ``keep(i, p)`` reports run i's
    step and says whether it should go on (False: cancelled, or its job was taken over). A
    dropped run trains on with the others (its prompt is a slice of the same batch) but is not
    stored; once every run of the group is dropped the group stops (:class:`JobCancelled`)."""

    def __init__(self, ids: list[str], keep: Callable[[int, dict], bool]):
        self.ids, self.keep, self.dropped = ids, keep, set()

    def callbacks(self) -> list[Progress]:
        return [self._for(i) for i in range(len(self.ids))]

    def _for(self, i: int) -> Progress:
        def progress(p: dict) -> None:
            if i in self.dropped:
                return
            if not self.keep(i, dict(p)):
                self.dropped.add(i)
                if len(self.dropped) == len(self.ids):
                    raise JobCancelled(self.ids[i])
        return progress
