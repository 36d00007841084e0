"""How runs pair up: the replicate is (family, seed), where the seed fixes the shot sample, order
and initialisation at every level and for every method. One place for the pairing that the
effects (intervals, p) and the dashboard's difference views both use, so they cannot drift apart."""

from __future__ import annotations

import numpy as np
import pandas as pd

LEGACY = "legacy"


def family_keys(values) -> list[str]:
    """Family column as text: the source seed, or 'legacy' for the first single family.
    Idempotent: keys already made pass through."""
    return [f if isinstance(f, str) else
            LEGACY if (f is None or f is pd.NA or (isinstance(f, float) and np.isnan(f))) else str(int(f))
            for f in values]


def selected_hashes(table: pd.DataFrame, preset: str | None = None, dataset: str | None = None,
                    families: list[str] | None = None) -> list[str]:
    """Hashes of the table's results in this preset, dataset and ticket families (keys as
    :func:`family_keys` writes them); a criterion left out selects everything."""
    if table.empty:
        return []
    if preset:
        table = table[table["preset"] == preset]
    if dataset:
        table = table[table["dataset"] == dataset]
    if families:
        table = table[[f in set(families) for f in family_keys(table["family"])]]
    return list(table["hash"])


def replicated(df: pd.DataFrame) -> pd.DataFrame:
    """Rows for an aggregate over families: where numbered ticket families exist, the legacy
    single family (another source recipe and protocol) is left out rather than counted as one
    more family. A table of legacy rows only is returned whole."""
    if "family" not in df or df.empty:
        return df
    keys = pd.Series(family_keys(df["family"]), index=df.index)
    return df[keys != LEGACY] if (keys != LEGACY).any() else df


def _with_family_key(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    out = df.dropna(subset=[metric])
    return out.assign(fkey=family_keys(out["family"]) if "family" in out else LEGACY)


PAIR = ["dataset", "fkey", "seed", "method", "shots"]


def minus_dense(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Every run with ``delta`` = its metric minus the level-0 ticket run of the same (dataset,
    family, seed, method, shots); the random arm is compared with that same dense run. Runs
    without a dense partner are left out."""
    df = _with_family_key(df, metric)
    base = df[(df["arm"] == "ticket") & (df["level"] == 0)].drop_duplicates(PAIR)
    out = df.merge(base[PAIR + [metric]].rename(columns={metric: "_base"}), on=PAIR, how="inner")
    return out.assign(delta=out[metric] - out["_base"]).drop(columns=["_base", "fkey"])


def imp_minus_random(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Every IMP run with ``delta`` = its metric minus the random-arm run of the same (dataset,
    family, seed, method, shots, level), as arm ``imp-random``."""
    df = _with_family_key(df, metric)
    base = df[df["arm"] == "random"].drop_duplicates(PAIR + ["level"])
    out = df[df["arm"] == "ticket"].merge(base[PAIR + ["level", metric]].rename(columns={metric: "_base"}),
                                          on=PAIR + ["level"], how="inner").assign(arm="imp-random")
    return out.assign(delta=out[metric] - out["_base"]).drop(columns=["_base", "fkey"])
