"""Seed aggregation of the results table: mean, spread and a 95% t-interval per cell.

A cell is (preset, dataset, method, arm, shots, level); seeds are the replicates. Used by the
dashboard's plots and by the mini-study write-up, so both show the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

CELL = ["preset", "dataset", "method", "arm", "shots", "level"]
SHOT_ORDER = ["1", "2", "5", "10", "full"]


def aggregate(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per cell: remaining_fraction, mean, std, n, ci_low, ci_high for ``metric``."""
    if table.empty:
        return pd.DataFrame(columns=CELL + ["remaining_fraction", "mean", "std", "n", "ci_low", "ci_high"])
    grouped = table.groupby(CELL, sort=True)
    out = grouped.agg(remaining_fraction=("remaining_fraction", "mean"), mean=(metric, "mean"),
                      std=(metric, "std"), n=(metric, "size")).reset_index()
    sem = out["std"] / np.sqrt(out["n"])
    half = np.where(out["n"] > 1, stats.t.ppf(0.975, np.maximum(out["n"] - 1, 1)) * sem, np.nan)
    out["std"] = out["std"].fillna(0.0)
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    return out


def markdown_table(table: pd.DataFrame, metric: str, method: str, arm: str = "ticket", scale: float = 100.0,
                   dataset: str | None = None) -> str:
    """Levels as rows, shots as columns, cells 'mean ± std' (x ``scale``)."""
    agg = aggregate(table, metric)
    agg = agg[(agg["method"] == method) & (agg["arm"] == arm)]
    if dataset:
        agg = agg[agg["dataset"] == dataset]
    shots = [s for s in SHOT_ORDER if s in set(agg["shots"])]
    lines = ["| level (remaining) | " + " | ".join(f"{s}-shot" if s != "full" else "full" for s in shots) + " |",
             "|---" * (len(shots) + 1) + "|"]
    for level, rows in agg.groupby("level"):
        cells = []
        for s in shots:
            r = rows[rows["shots"] == s]
            cells.append(f"{scale * r['mean'].iloc[0]:.1f} ± {scale * r['std'].iloc[0]:.1f}" if len(r) else "")
        lines.append(f"| L{level} ({100 * rows['remaining_fraction'].iloc[0]:.1f}%) | " + " | ".join(cells) + " |")
    return "\n".join(lines)
