"""Compression arms against IMP, at equal sparsity: the contrasts that say whether the lottery
ticket is special among pruning methods, and what quantization alone costs.

Paired like every contrast (:mod:`lthvp.analysis.effects`): inside one (method, shots, level,
family, seed), where the seed fixes the shot sample, so the arms see the same data; fitted by the
same crossed family x seed model (:func:`lthvp.analysis.inference.crossed`) and corrected over
the shot counts of one question (``test_family`` = metric | method | arm | contrast).

* ``imp-<arm>_L{k}`` (arm column ``imp-<arm>``) for every pruning arm of
  :data:`lthvp.results.config.PRUNED_ARMS` (random, oneshot, oneshot_noft, structured,
  structured_noft): the IMP ticket at level k minus that arm at level k, i.e. at IMP level k's
  remaining fraction (structured: the matched parameter fraction). Positive accuracy = IMP
  transfers better; positive ECE = IMP is worse calibrated.
* ``quant8-L{k}`` / ``quant4-L{k}`` (arm column ``quant8-float`` / ``quant4-float``): the
  quantized arm at level k minus the same IMP level with its float weights (k = 0: minus the
  dense model), so the difference is quantization alone. Positive ECE = quantization worsens
  calibration.

Importable without torch (the dashboard computes these in its server process).
"""

from __future__ import annotations

import re

import pandas as pd

from lthvp.analysis.inference import crossed
from lthvp.results.config import PRUNED_ARMS

# bits per weight of the quantized arms: family.json records the same number per member
# (lthvp.tickets.arms.QUANT_BITS; tested equal), kept here so the UI needs no torch to say it
QUANT_BITS = {"quant8": 8, "quant4": 4}
PAIR_INDEX = ["method", "shots", "level", "family", "seed"]


def contrast_row(metric: str, method: str, arm: str, shots: str, contrast: str, diffs: pd.DataFrame, n_runs: int,
                 **extra) -> dict:
    """One effects-table row: the crossed model's fit of the per-(family, seed) differences ``d``."""
    return {"metric": metric, "method": method, "arm": arm, "shots": shots, "contrast": contrast,
            **crossed(diffs), "n_runs": n_runs, "test_family": f"{metric}|{method}|{arm}|{contrast}", **extra}


def by_arm(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The metric with one column per arm, one row per (method, shots, level, family, seed)."""
    return df.pivot_table(index=PAIR_INDEX, columns="arm", values=metric, aggfunc="mean")


def _paired(wide: pd.DataFrame, metric: str, minuend: str, subtrahend: str, arm: str, name) -> list[dict]:
    """Rows of ``wide[minuend] - wide[subtrahend]`` per (method, shots, level); ``name(level)`` is
    the contrast's name. Only (family, seed) pairs holding both arms enter."""
    if not {minuend, subtrahend} <= set(wide.columns):
        return []
    d_all = (wide[minuend] - wide[subtrahend]).dropna().rename("d").reset_index()
    return [contrast_row(metric, method, arm, shots, name(level), d, 2 * len(d))
            for (method, shots, level), d in d_all.groupby(["method", "shots", "level"])]


def imp_vs_pruning(df: pd.DataFrame, metric: str, wide: pd.DataFrame | None = None) -> list[dict]:
    """IMP minus each pruning arm at the same level (``imp-<arm>_L{k}``), random first."""
    wide = by_arm(df, metric) if wide is None else wide
    return [row for arm in PRUNED_ARMS
            for row in _paired(wide, metric, "ticket", arm, f"imp-{arm}", lambda lv, a=arm: f"imp-{a}_L{lv}")]


def quant_vs_float(df: pd.DataFrame, metric: str, wide: pd.DataFrame | None = None) -> list[dict]:
    """Each quantized arm minus the same IMP level in float (``quant8-L{k}``, ``quant4-L{k}``)."""
    wide = by_arm(df, metric) if wide is None else wide
    return [row for arm in QUANT_BITS
            for row in _paired(wide, metric, arm, "ticket", f"{arm}-float", lambda lv, a=arm: f"{a}-L{lv}")]


LEVEL = re.compile(r"(?:imp-[a-z_]+_L|quant\d+-L)(\d+)")


def contrast_level(contrast: str) -> int | None:
    """The level of an arm contrast's name (``imp-oneshot_L4`` -> 4, ``quant8-L0`` -> 0), else None."""
    m = LEVEL.fullmatch(contrast)
    return int(m.group(1)) if m else None


def claim_levels(table: pd.DataFrame, method: str, template: str) -> list[int]:
    """The levels at which ``table`` holds ``template`` (``imp-oneshot_L{level}``) for ``method``, in
    order: a pre-registered claim on an arm is asked at every level the sweep ran it at."""
    if table.empty:
        return []
    stem, tail = template.split("{level}")
    names = table.loc[table["method"] == method, "contrast"].unique()
    return sorted(int(c[len(stem):len(c) - len(tail)]) for c in names
                  if c.startswith(stem) and c.endswith(tail) and c[len(stem):len(c) - len(tail)].isdigit())
