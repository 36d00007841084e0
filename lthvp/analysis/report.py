"""Aggregation of the results table: mean, spread and a 95% t-interval per cell.

A cell is (dataset, method, shots, arm, level). When a cell holds several ticket families, the
family is the unit: seeds are averaged inside each family first and the interval comes from
the spread between families. With one family, seeds are the replicates. The dashboard's plots
and the study write-up both use these functions, so they show the same numbers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lthvp.analysis.pairing import family_keys, imp_minus_random, minus_dense, replicated
from lthvp.results.shots import label as shots_label, order as shots_order  # noqa: F401 (the UI imports them here)

GROUP_KEYS = ["dataset", "method", "shots", "arm", "level"]
BOUNDS = {"accuracy": (0.0, 1.0), "ece": (0.0, 1.0), "mce": (0.0, 1.0), "nll": (0.0, np.inf), "brier": (0.0, 2.0)}


def t_critical(n: int, confidence: float = 0.95) -> float:
    if n < 2:
        return float("nan")
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def aggregate(df: pd.DataFrame, metric: str, keys: Sequence[str] = GROUP_KEYS) -> pd.DataFrame:
    """Mean, std, n and 95% t-interval over seeds for every (dataset, method, shots, arm, level)."""
    cols = list(keys) + ["mean", "std", "n", "lo", "hi", "remaining", "seeds"]
    if df.empty or metric not in df:
        return pd.DataFrame(columns=cols)
    df = replicated(df.dropna(subset=[metric]))  # the legacy family never joins replicated ones
    if "family" in df and len(set(family_keys(df["family"]))) > 1:
        fam = df.assign(family=family_keys(df["family"]))
        df = (fam.groupby(list(keys) + ["family"], dropna=False, observed=True)
              .agg(**{metric: (metric, "mean"), "remaining_fraction": ("remaining_fraction", "mean")}).reset_index())
        df["seed"] = "f" + df["family"]  # the replicate label shown in hovers: one per family
    g = df.groupby(list(keys), dropna=False, observed=True)
    out = g.agg(mean=(metric, "mean"), std=(metric, "std"), n=(metric, "size"),
                remaining=("remaining_fraction", "mean"),
                seeds=("seed", lambda s: ",".join(str(v) for v in sorted(set(s))))).reset_index()
    half = np.array([t_critical(int(n)) for n in out["n"]]) * out["std"].fillna(0).to_numpy() / np.sqrt(out["n"])
    half = np.where(out["n"].to_numpy() > 1, half, np.nan)
    lo_bound, hi_bound = BOUNDS.get(metric, (-np.inf, np.inf))
    out["lo"] = (out["mean"] - half).clip(lower=lo_bound)  # the interval never leaves the metric's range
    out["hi"] = (out["mean"] + half).clip(upper=hi_bound)
    return out[cols]


def markdown_table(table: pd.DataFrame, metric: str, method: str, arm: str = "ticket", scale: float = 100.0,
                   dataset: str | None = None) -> str:
    """Levels as rows, shots as columns, cells 'mean ± std' (x ``scale``)."""
    agg = aggregate(table, metric)
    agg = agg[(agg["method"] == method) & (agg["arm"] == arm)]
    if dataset:
        agg = agg[agg["dataset"] == dataset]
    shots = shots_order(agg["shots"].unique())
    lines = ["| level (remaining) | " + " | ".join(shots_label(s) for s in shots) + " |",
             "|---" * (len(shots) + 1) + "|"]
    for level, rows in agg.groupby("level"):
        cells = []
        for s in shots:
            r = rows[rows["shots"] == s]
            cells.append(f"{scale * r['mean'].iloc[0]:.1f} ± {scale * r['std'].fillna(0).iloc[0]:.1f}" if len(r) else "")
        lines.append(f"| L{level} ({100 * rows['remaining'].iloc[0]:.1f}%) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


VIEWS = {"absolute": "the metric itself",
         "dense": "change vs the dense model: level L minus level 0, paired by family, seed, method and shots",
         "random": "IMP minus random pruning at equal sparsity, paired by family, seed, method, shots and level"}


def paired_difference(df: pd.DataFrame, metric: str, view: str) -> pd.DataFrame:
    """The results table with a ``delta`` column: a paired difference per run (see VIEWS and
    :mod:`lthvp.analysis.pairing`). Runs without their partner are left out (the caller reports how many)."""
    if view not in ("dense", "random"):
        raise ValueError(f"view must be 'dense' or 'random', got {view!r}")
    return minus_dense(df, metric) if view == "dense" else imp_minus_random(df, metric)
