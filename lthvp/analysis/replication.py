"""Replication hygiene: which runs an analysis uses. Only planned replicates enter a contrast:
one run per (cell, family, seed) of each method's main protocol; what is left out (other
protocols, duplicates, missing replicates) is listed by :func:`replication_report`, never
pooled silently, and ``all_runs=True`` averages duplicates of a cell explicitly."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from lthvp.analysis.pairing import family_keys, replicated
from lthvp.results.shots import as_text as shots_text

KEY = ["dataset", "method", "arm", "shots", "level", "family", "seed"]  # one planned run per key
PROTOCOL = ("preset", "epochs", "steps", "lr", "batch_size", "image_size", "mapping", "assignment", "lp_input", "precision",
            "val_per_class")


def _base(df: pd.DataFrame) -> pd.DataFrame:
    """Family keys, shots as text and x = halvings; the legacy family left out where replicated
    families exist (another source recipe and protocol, not one more family)."""
    out = replicated(df).copy()
    if "family" not in out:
        out["family"] = np.nan
    out["family"] = family_keys(out["family"])
    out["shots"] = out["shots"].map(shots_text)  # canonical text (lthvp.results.shots)
    out["halvings"] = -np.log2(out["remaining_fraction"].astype(float))
    return out


def prepare(df: pd.DataFrame, all_runs: bool = False) -> pd.DataFrame:
    """The runs the contrasts use, one per (dataset, method, arm, shots, level, family, seed):
    the main protocol's, with cells holding two runs of it left out (see
    :func:`replication_report`); ``all_runs`` keeps every protocol and averages a cell's runs."""
    out = _base(df)
    key = [c for c in KEY if c in out]
    if all_runs:
        return _pool_duplicates(out, key)
    out = main_protocol(out)
    return out[~out.duplicated(key, keep=False)] if key else out


def _pool_duplicates(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """One row per key: numeric columns averaged, the rest from the first run (all_runs only)."""
    if not key or not df.duplicated(key).any():
        return df
    numeric = [c for c in df.select_dtypes("number").columns if c not in key]
    agg = {c: ("mean" if c in numeric else "first") for c in df.columns if c not in key}
    return df.groupby(key, sort=False, dropna=False).agg(agg).reset_index()[list(df.columns)]


def _protocol(df: pd.DataFrame) -> pd.Series:
    cols = [c for c in PROTOCOL if c in df]
    if not cols:
        return pd.Series("", index=df.index)
    parts = [c + "=" + df[c].astype(object).where(df[c].notna(), "-").astype(str) for c in cols]
    return functools.reduce(lambda a, b: a + "|" + b, parts)


def main_protocol(df: pd.DataFrame) -> pd.DataFrame:
    """Per method, only the runs of its most common training protocol (a store may also hold
    variants, e.g. learning-rate grid runs): contrasts must compare like with like."""
    if df.empty or not any(c in df for c in PROTOCOL):
        return df
    # the protocol may differ by shot count (epochs, batch): the most common one per (method, shots);
    # ties go to the protocol seen first. Vectorised: this runs on every effects-page render.
    protocol = _protocol(df)
    cell = df["method"].astype(str) + "\x00" + df["shots"].map(shots_text)
    counts = protocol.groupby([cell, protocol], sort=False).transform("size")
    best = counts.groupby(cell, sort=False).transform("max")
    first_best = protocol.where(counts == best).groupby(cell, sort=False).transform("first")
    return df[protocol == first_best]


REPORT_COLUMNS = ["dataset", "method", "shots", "arm", "level", "issue", "runs", "detail"]


def replication_report(df: pd.DataFrame) -> pd.DataFrame:
    """What the planned analysis leaves out or lacks, per cell: runs of another protocol than their
    (method, shots)'s main one, cells holding more than one run of the same protocol (both left
    out), and cells missing (family, seed) replicates that other cells of the same (dataset,
    method, shots) have. Empty when every cell holds exactly the design's replicates."""
    if df.empty:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    base = _base(df)
    if "dataset" not in base:
        base["dataset"] = ""
    rows = []
    main = main_protocol(base)
    other = base.drop(index=main.index)
    if not other.empty:
        proto, main_proto = _protocol(other), _protocol(main)
        main_of = dict(zip(main["method"].astype(str) + "\x00" + main["shots"], main_proto))
        for (ds, method, shots, arm, p), g in other.groupby(
                [other["dataset"], other["method"], other["shots"], other["arm"], proto], sort=True):
            ref = dict(x.split("=", 1) for x in main_of.get(f"{method}\x00{shots}", "").split("|") if x)
            diff = ", ".join(f"{k}={v} (main: {ref.get(k, '-')})" for k, v in (x.split("=", 1) for x in p.split("|"))
                             if ref.get(k) != v)
            rows.append((ds, method, shots, arm, ",".join(f"L{lv}" for lv in sorted(g["level"].unique())),
                         "other protocol, left out", len(g), diff))
    key = [c for c in KEY if c in main]
    dup = main[main.duplicated(key, keep=False)]
    for (ds, method, shots, arm, level), g in dup.groupby(["dataset", "method", "shots", "arm", "level"], sort=True):
        pairs = sorted({f"f{f} s{s}" for f, s in zip(g["family"], g["seed"])})
        rows.append((ds, method, shots, arm, f"L{level}", "several runs of one replicate, left out", len(g),
                     "; ".join(pairs)))
    planned = main[~main.duplicated(key, keep=False)]
    for (ds, method, shots), part in planned.groupby(["dataset", "method", "shots"], sort=True):
        design = set(zip(part["family"], part["seed"].astype(str)))
        for (arm, level), cell in part.groupby(["arm", "level"], sort=True):
            missing = design - set(zip(cell["family"], cell["seed"].astype(str)))
            if missing:
                rows.append((ds, method, shots, arm, f"L{level}", "missing replicates", len(cell),
                             "missing " + "; ".join(f"f{f} s{s}" for f, s in sorted(missing))))
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)
