"""The true replication behind every aggregated point: how many families, how many seeds in each,
how many runs, and whether the cell is balanced (every family has the same seeds, one run each).
The aggregate (lthvp.analysis.report.aggregate) averages seeds within a family, then families, so
a family with an extra seed moves its point: such a cell is flagged, never averaged silently."""

from __future__ import annotations

import pandas as pd

from lthvp.analysis.pairing import LEGACY, family_keys, replicated
from lthvp.analysis.report import GROUP_KEYS

COLUMNS = ["families", "seeds per family", "runs", "replicates", "balanced", "replication"]


def _family_sort(f: str) -> tuple:
    return (not f.isdigit(), int(f) if f.isdigit() else 0, f)


def describe(families: list[str], seeds: list) -> dict:
    """One cell's replication from its runs' (family key, seed): counts, whether it is balanced,
    and the sentence hovers and tables show, e.g. '3 families x 5 seeds = 15 runs' or
    '3 families x 5-6 seeds = 16 runs; unequal replication: f0 6 seeds, f1 5, f2 5'."""
    runs = pd.DataFrame({"family": families, "seed": [str(s) for s in seeds]})
    per = runs.groupby("family")["seed"].agg(["nunique", "size"])
    per = per.loc[sorted(per.index, key=_family_sort)]
    seed_sets = {f: frozenset(g) for f, g in runs.groupby("family")["seed"]}
    counts = per["nunique"].tolist()
    repeated = int((per["size"] - per["nunique"]).sum())
    balanced = len(set(seed_sets.values())) <= 1 and repeated == 0
    low, high = (min(counts), max(counts)) if counts else (0, 0)
    seeds_text = f"{low}" if low == high else f"{low}-{high}"
    n = len(runs)
    only_legacy = list(per.index) == [LEGACY]
    head = (f"{seeds_text} seed{'s' if high != 1 else ''} = {n} run{'s' if n != 1 else ''}" if only_legacy else
            f"{len(per)} famil{'y' if len(per) == 1 else 'ies'} x {seeds_text} seed{'s' if high != 1 else ''} "
            f"= {n} run{'s' if n != 1 else ''}")
    notes = []
    if len(set(counts)) > 1 or len(set(seed_sets.values())) > 1:
        notes.append("unequal replication: " + ", ".join(
            (f"f{f} " if f != LEGACY else "legacy ") + (f"{c} seeds" if i == 0 else f"{c}")
            for i, (f, c) in enumerate(zip(per.index, counts))))
    if repeated:
        notes.append(f"{repeated} repeated (family, seed) run{'s' if repeated != 1 else ''}")
    return {"families": len(per), "seeds per family": seeds_text, "runs": n,
            "replicates": int(per["nunique"].sum()), "balanced": balanced,
            "replication": head + ("; " + "; ".join(notes) if notes else "")}


def replication_table(df: pd.DataFrame, metric: str, keys=GROUP_KEYS) -> pd.DataFrame:
    """Per group of ``keys``: :func:`describe` of the runs the aggregate of ``metric`` uses (the
    same rows: the metric present, the legacy family left out where numbered families exist)."""
    if df.empty or metric not in df:
        return pd.DataFrame(columns=list(keys) + COLUMNS)
    rows = replicated(df.dropna(subset=[metric]))
    fam = family_keys(rows["family"]) if "family" in rows else [LEGACY] * len(rows)
    rows = rows.assign(_family=fam)
    out = []
    for group, part in rows.groupby(list(keys), dropna=False, observed=True):
        out.append({**dict(zip(keys, group if isinstance(group, tuple) else (group,))),
                    **describe(list(part["_family"]), list(part["seed"]))})
    return pd.DataFrame(out, columns=list(keys) + COLUMNS)


def with_replication(agg: pd.DataFrame, df: pd.DataFrame, column: str) -> pd.DataFrame:
    """``agg`` (report.aggregate of ``column`` over ``df``) with each group's true replication (families,
    seeds per family, runs, balanced, the sentence hovers show): lthvp.analysis.replicates."""
    if agg.empty:
        return agg.assign(**{c: pd.Series(dtype=object) for c in ("replication", "balanced")})
    reps = replication_table(df, column)
    keys = [k for k in GROUP_KEYS if k in agg]
    left = agg.assign(**{k: agg[k].astype(str) for k in keys})
    right = reps.assign(**{k: reps[k].astype(str) for k in keys})
    merged = left.merge(right, on=keys, how="left")
    return merged.assign(**{k: agg[k].to_numpy() for k in keys}).drop(columns=["seeds"], errors="ignore")
