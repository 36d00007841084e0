"""What the Run page says about one job beyond its state: the time left, estimated from the
rate its own progress was measured at, and its log lines. Pure (no Streamlit)."""

from __future__ import annotations

import time
from datetime import datetime


def eta_seconds(job: dict, log: list[dict], now: float | None = None) -> float | None:
    """Seconds until a running job ends, from measured progress: the rate between its first and its
    latest logged progress (so model loading before the first round does not count), or, with one
    progress point, since it started. None while nothing was measured or once it is finished."""
    now = time.time() if now is None else now
    points = [(e["t"], e["fraction"]) for e in log if isinstance(e.get("fraction"), (int, float))
              and (not job.get("started_at") or e["t"] >= job["started_at"])]  # this attempt's points only
    if job.get("state") != "running" or not points:
        return None
    (t0, f0), (t1, f1) = points[0], points[-1]
    if f1 >= 1.0:
        return 0.0
    if len(points) < 2 or f1 <= f0:
        t0, f0 = job.get("started_at"), 0.0
        if not t0 or f1 <= 0:
            return None
    rate = (f1 - f0) / max(t1 - t0, 1e-9)  # fraction per second
    return max(0.0, (1.0 - f1) / rate - (now - t1))


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "time left: not measured yet"
    s = int(round(seconds))
    if s < 60:
        return f"about {s} s left"
    if s < 3600:
        return f"about {s // 60} min {s % 60:02d} s left"
    return f"about {s // 3600} h {s % 3600 // 60:02d} min left"


def log_text(log: list[dict], last: int = 30) -> str:
    """The newest ``last`` log lines, one per line, each with its local clock time."""
    return "\n".join(f"{datetime.fromtimestamp(e['t']).strftime('%H:%M:%S')}  {e['text']}" for e in log[-last:])
