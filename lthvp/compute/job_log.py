"""A small per-job log beside the job queue: what a worker did with one job (claimed, each
round's progress, finished / failed / re-queued), read by the Run page for its log lines and ETA.

Entries live in the queue's own diskcache under ``log:<job id>`` as one JSON list (never
pickles), the newest ``MAX_LINES`` kept, so a job that runs for days cannot grow it without
bound. Writing a line never raises: a log must not fail a job."""

from __future__ import annotations

import json
import time

LOG = "log:"
MAX_LINES = 200


def _read(queue, job_id: str) -> list[dict]:
    try:
        value = json.loads(queue.cache.get(LOG + job_id) or "[]")
    except (TypeError, ValueError):
        return []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def append(queue, job_id: str, text: str, fraction: float | None = None, now: float | None = None) -> None:
    """Add one line (``fraction``: share of the job done at that moment, for the ETA)."""
    entry = {"t": time.time() if now is None else now, "text": " ".join(str(text).split())[:500]}
    if fraction is not None:
        entry["fraction"] = max(0.0, min(1.0, float(fraction)))
    try:
        with queue.cache.transact():
            lines = (_read(queue, job_id) + [entry])[-MAX_LINES:]
            queue.cache.set(LOG + job_id, json.dumps(lines, allow_nan=False))
    except Exception:  # noqa: BLE001  (a busy database or odd text must not fail the job)
        pass


def lines(queue, job_id: str) -> list[dict]:
    """The job's log, oldest first: [{'t': epoch seconds, 'text': ..., 'fraction'?: 0..1}]."""
    return _read(queue, job_id)


def forget(queue, job_id: str) -> None:
    queue.cache.delete(LOG + job_id)


def progress_fraction(progress: dict | None) -> float | None:
    """Share of a run done from its progress row (round/epoch ``epoch`` of ``epochs``)."""
    p = progress or {}
    try:
        return max(0.0, min(1.0, float(p["epoch"]) / float(p["epochs"]))) if p.get("epochs") else None
    except (KeyError, TypeError, ValueError):
        return None


def progress_text(progress: dict | None) -> str:
    """A progress row in the protocol's unit: 'step 160/800 (round 8/50) · val acc 81.2% · loss 0.412'
    for a step budget (each round runs the same number of steps, so the total is steps/round x rounds),
    'epoch 3/20 · ...' otherwise."""
    p = progress or {}
    epoch, epochs, steps = p.get("epoch"), p.get("epochs"), p.get("steps")
    if isinstance(steps, (int, float)) and isinstance(epoch, (int, float)) and epoch > 0 and epochs:
        total = int(round(steps / epoch * epochs))
        parts = [f"step {int(steps)}/{total} (round {epoch}/{epochs})"]
    else:
        parts = [f"epoch {epoch}/{epochs}"]
    if p.get("val_acc") is not None:
        parts.append(f"val acc {100 * p['val_acc']:.1f}%")
    if p.get("train_loss") is not None:
        parts.append(f"loss {p['train_loss']:.3f}")
    return " · ".join(parts)


def record_progress(queue, job_id: str, progress: dict) -> None:
    """Log one progress row (called by the worker beside ``JobQueue.progress``)."""
    append(queue, job_id, progress_text(progress), progress_fraction(progress))
