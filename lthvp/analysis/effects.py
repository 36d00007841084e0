"""Effects with their uncertainty: the statistics behind every claim the study makes.

Input is the results table (one row per run: config fields, metrics, ``ts_*`` temperature-
scaled metrics). Replicates are paired: a contrast is formed inside one (family, seed), where
the seed fixes the shot sample, order and initialisation at every level and for every method.
The **unit of replication is the ticket family** (source seed): differences are averaged over
seeds inside a family, and the interval and p come from the spread *between* families. With a
single family (the legacy study) seeds are the only replicates; such rows say ``unit=seed``,
and their interval ignores the between-ticket variance.

Contrasts (estimates in the metric's own units, e.g. accuracy as a fraction):

* ``L{k}-L0``: level k minus the dense level 0;
* ``slope``: least-squares slope of the metric against log2(1 / remaining fraction), i.e. the
  change *per halving of the remaining weights* (negative accuracy slope = sparsity hurts);
* ``vp-lp_slope``: VP's slope minus LP's (the paper's "sparsity costs VP more than LP");
* ``imp-random_L{k}``: the IMP ticket minus random pruning at equal sparsity;
* ``vp-map_L{k}``: VP minus the same label mapping with the prompt frozen (the prompt's share).

Each p is a two-sided one-sample t-test of the unit means against 0; ``p_perm`` is the exact
sign-flip permutation p (all 2^n sign patterns for n <= 16). Holm's correction runs over the
shot counts of one question (``test_family``: metric | method | arm | contrast).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from scipy import stats

from lthvp.analysis.pairing import family_keys, minus_dense, replicated

METRICS = ("accuracy", "ece", "mce", "nll", "brier", "ts_ece", "ts_mce", "ts_nll", "ts_brier")
COLUMNS = ["metric", "method", "arm", "shots", "contrast", "estimate", "ci_low", "ci_high", "p", "p_perm", "p_holm",
           "n_families", "n_runs", "unit", "test_family"]
MAX_EXACT_FLIPS = 16


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Normalise the columns the contrasts need (family label, shots as text, x = halvings).
    Where replicated families exist, legacy-family rows (another source recipe and protocol)
    are left out rather than counted as one more family."""
    out = replicated(df).copy()
    if "family" not in out:
        out["family"] = np.nan
    out["family"] = family_keys(out["family"])
    out["shots"] = out["shots"].astype(str)
    out["halvings"] = -np.log2(out["remaining_fraction"].astype(float))
    return main_protocol(out)


PROTOCOL = ("preset", "epochs", "steps", "lr", "batch_size", "image_size", "mapping", "assignment", "lp_input")


def main_protocol(df: pd.DataFrame) -> pd.DataFrame:
    """Per method, only the runs of its most common training protocol (a store may also hold
    variants, e.g. learning-rate grid runs): contrasts must compare like with like."""
    cols = [c for c in PROTOCOL if c in df]
    if df.empty or not cols:
        return df
    # the protocol may differ by shot count (epochs, batch): the most common one per (method, shots);
    # ties go to the protocol seen first. Vectorised: this runs on every effects-page render.
    parts = [df[c].astype(object).where(df[c].notna(), "-").astype(str) for c in cols]
    protocol = functools.reduce(lambda a, b: a + "|" + b, parts)
    cell = df["method"].astype(str) + "\x00" + df["shots"].astype(str)
    counts = protocol.groupby([cell, protocol], sort=False).transform("size")
    best = counts.groupby(cell, sort=False).transform("max")
    first_best = protocol.where(counts == best).groupby(cell, sort=False).transform("first")
    return df[protocol == first_best]


@functools.lru_cache(maxsize=None)
def _all_signs(n: int) -> np.ndarray:
    """The +-1 patterns of length n with a + first (2**(n-1) rows), built once per n: a pattern
    and its negation give the same |mean|, so half of them give the exact p."""
    bits = (np.arange(2 ** (n - 1))[:, None] >> np.arange(n)[::-1]) & 1
    return 1.0 - 2.0 * bits


def sign_flip_p(values: np.ndarray, draws: int = 20000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p for mean(values) = 0 (exact for n <= 16)."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n == 0:
        return float("nan")
    observed = abs(v.mean())
    if n <= MAX_EXACT_FLIPS:
        signs = _all_signs(n)
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(draws, n))
    hits = int(np.sum(np.abs(signs @ v / n) >= observed - 1e-12))
    if n <= MAX_EXACT_FLIPS:
        return hits / len(signs)
    return (hits + 1) / (len(signs) + 1)  # sampled: count the observed pattern, so p is never 0


@functools.lru_cache(maxsize=None)
def _t_quantile(dof: int) -> float:
    return float(stats.t.ppf(0.975, dof))


def summarise(units: pd.Series) -> dict:
    """Mean of the unit values with a 95% t-interval and the t and sign-flip p."""
    v = units.to_numpy(dtype=float)
    n = len(v)
    est = float(v.mean()) if n else float("nan")
    if n < 2:
        return {"estimate": est, "ci_low": float("nan"), "ci_high": float("nan"), "p": float("nan"),
                "p_perm": float("nan")}
    se = float(v.std(ddof=1) / np.sqrt(n))
    half = _t_quantile(n - 1) * se
    # the one-sample t-test written out (scipy's wrapper costs ~1 ms a call, hundreds of calls a page)
    p = float(2 * stats.t.sf(abs(est / se), n - 1)) if se > 0 else (1.0 if est == 0 else 0.0)
    return {"estimate": est, "ci_low": est - half, "ci_high": est + half, "p": p, "p_perm": sign_flip_p(v)}


def _by_unit(diffs: pd.DataFrame) -> tuple[pd.Series, str, int]:
    """Average paired (family, seed) differences to one value per family; seeds when one family."""
    n_families = diffs["family"].nunique()
    if n_families >= 2:
        return diffs.groupby("family")["d"].mean(), "family", n_families
    return diffs["d"], "seed", n_families


def _row(metric, method, arm, shots, contrast, diffs: pd.DataFrame, n_runs: int) -> dict:
    units, unit, n_families = _by_unit(diffs)
    return {"metric": metric, "method": method, "arm": arm, "shots": shots, "contrast": contrast,
            **summarise(units), "n_families": n_families, "n_runs": n_runs, "unit": unit,
            "test_family": f"{metric}|{method}|{arm}|{contrast}"}


def _wide(df: pd.DataFrame, metric: str, index: list[str], columns: str) -> pd.DataFrame:
    return df.pivot_table(index=index, columns=columns, values=metric, aggfunc="mean")


def level_contrasts(df: pd.DataFrame, metric: str) -> list[dict]:
    """Level L minus level 0 (the ticket arm's dense run) within (method, shots, family, seed);
    the pairing is :func:`lthvp.analysis.pairing.minus_dense`, the one the dashboard draws."""
    pairs = minus_dense(df, metric)
    pairs = pairs[pairs["level"] > 0].rename(columns={"delta": "d"}).dropna(subset=["d"])
    return [_row(metric, method, arm, shots, f"L{level}-L0", g[["family", "seed", "d"]].reset_index(drop=True),
                 2 * len(g))
            for (method, arm, shots, level), g in pairs.groupby(["method", "arm", "shots", "level"])]


def slope_per_replicate(part: pd.DataFrame, metric: str) -> pd.Series:
    """OLS slope of the metric on halvings, per (family, seed) with >= 2 levels (dense included):
    cov(x, y) / var(x) inside each group, all groups at once (numpy bincount over group codes)."""
    data = part.dropna(subset=[metric])
    if data.empty:
        return pd.Series(dtype=float)
    grouped = data.groupby(["family", "seed"], sort=True)
    g = grouped.ngroup().to_numpy()
    x, y = data["halvings"].to_numpy(float), data[metric].to_numpy(float)
    count = np.bincount(g)
    dx = x - (np.bincount(g, x) / count)[g]
    dy = y - (np.bincount(g, y) / count)[g]
    sxy, sxx = np.bincount(g, dx * dy), np.bincount(g, dx * dx)
    levels = np.bincount(np.unique(np.stack([g, x]), axis=1)[0].astype(int), minlength=len(count))
    slopes = pd.Series(sxy / np.where(sxx > 0, sxx, np.nan), index=grouped.size().index, dtype=float)
    return slopes[levels >= 2].rename(None)


def slope_contrasts(df: pd.DataFrame, metric: str) -> list[dict]:
    rows, slopes = [], {}
    for (method, shots), part in df.groupby(["method", "shots"]):
        arms = part[(part["arm"] == "ticket")]
        s = slope_per_replicate(arms, metric)
        slopes[(method, shots)] = s
        if len(s):
            d = s.rename("d").rename_axis(["family", "seed"]).reset_index()
            rows.append(_row(metric, method, "ticket", shots, "slope", d, len(arms)))
    for (method, shots), s in slopes.items():
        if method != "vp" or ("lp", shots) not in slopes:
            continue
        d = (s - slopes[("lp", shots)]).dropna().rename("d").rename_axis(["family", "seed"]).reset_index()
        if len(d):
            n_runs = int(((df["shots"] == shots) & (df["arm"] == "ticket") & df["method"].isin(["vp", "lp"])).sum())
            rows.append(_row(metric, "vp-lp", "ticket", shots, "vp-lp_slope", d, n_runs))
    return rows


def paired_arm_contrasts(df: pd.DataFrame, metric: str) -> list[dict]:
    """IMP - random at equal level, and VP - mapping-only at each level (same family, seed)."""
    rows = []
    wide = _wide(df, metric, ["method", "shots", "level", "family", "seed"], "arm")
    if {"ticket", "random"} <= set(wide.columns):
        d_all = (wide["ticket"] - wide["random"]).dropna().rename("d").reset_index()
        for (method, shots, level), d in d_all.groupby(["method", "shots", "level"]):
            rows.append(_row(metric, method, "imp-random", shots, f"imp-random_L{level}", d, 2 * len(d)))
    wide = _wide(df[df["arm"] == "ticket"], metric, ["shots", "level", "family", "seed"], "method")
    if {"vp", "map"} <= set(wide.columns):
        d_all = (wide["vp"] - wide["map"]).dropna().rename("d").reset_index()
        for (shots, level), d in d_all.groupby(["shots", "level"]):
            rows.append(_row(metric, "vp-map", "ticket", shots, f"vp-map_L{level}", d, 2 * len(d)))
    return rows


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def effects(df: pd.DataFrame, metric: str = "accuracy", dataset: str | None = None) -> pd.DataFrame:
    """Every contrast for one metric, per dataset (all datasets when None; never pooled),
    Holm-corrected across shots per question."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if df.empty or metric not in df or df[metric].isna().all():
        return pd.DataFrame(columns=["dataset"] + COLUMNS)
    names = sorted(df["dataset"].unique()) if dataset is None else [dataset]
    parts = [_effects_one(df[df["dataset"] == name], metric).assign(dataset=name) for name in names]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["dataset"] + COLUMNS)
    return pd.concat(parts, ignore_index=True)[["dataset"] + COLUMNS]


def _effects_one(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    data = prepare(df).dropna(subset=[metric])
    rows = level_contrasts(data, metric) + slope_contrasts(data, metric) + paired_arm_contrasts(data, metric)
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "p_holm"])
    if out.empty:
        return pd.DataFrame(columns=COLUMNS)
    # one question = one test_family: the shot counts of one contrast (L8-L0, slope, imp-random_L8, ...)
    out["p_holm"] = out.groupby("test_family")["p"].transform(lambda s: pd.Series(holm(s.to_numpy()), index=s.index))
    return out[COLUMNS].reset_index(drop=True)


PERCENT_METRICS = ("accuracy", "ece", "mce", "ts_ece", "ts_mce")


def points_scale(metric: str | None) -> float:
    """Accuracy and calibration errors are fractions in the records and stated in percentage
    points wherever a person reads them; NLL and Brier are stated as they are."""
    return 100.0 if metric in PERCENT_METRICS else 1.0


def verdict(row: pd.Series | dict, alpha: float = 0.05, metric: str | None = None) -> str:
    """One plain-language line generated from a row's numbers (in points for ``metric`` when it
    is a percentage, so it reads like the table and the charts beside it)."""
    p = row["p_holm"]
    if p != p:  # NaN: fewer than two replicates
        return "not testable (fewer than two replicates)"
    status = "detected" if p < alpha else "not detected"
    k = points_scale(metric)
    unit, digits = (" pts", 2) if k == 100 else ("", 4)
    return (f"{status} at {100 * alpha:g}% after Holm: estimate {k * row['estimate']:+.{digits}f}{unit} "
            f"[{k * row['ci_low']:+.{digits}f}, {k * row['ci_high']:+.{digits}f}], p_holm = {p:.3g}, "
            f"{row['n_families']} famil{'y' if row['n_families'] == 1 else 'ies'} ({row['unit']} as unit)")


def low_vs_full(df: pd.DataFrame, metric: str = "accuracy", dataset: str | None = None) -> dict | None:
    """"Most at low data": (VP - LP slope) at the fewest shots minus the same at full data,
    paired within (family, seed), family as the unit. None when either end is missing."""
    if dataset is None and df["dataset"].nunique() > 1:
        raise ValueError("low_vs_full needs one dataset")
    data = prepare(df if dataset is None else df[df["dataset"] == dataset]).dropna(subset=[metric])
    data = data[data["arm"] == "ticket"]
    shots = sorted({s for s in data["shots"] if s.isdigit()}, key=int)
    if not shots or "full" not in set(data["shots"]):
        return None

    def gap(s):
        part = data[data["shots"] == s]
        return slope_per_replicate(part[part["method"] == "vp"], metric) - slope_per_replicate(part[part["method"] == "lp"], metric)

    d = (gap(shots[0]) - gap("full")).dropna().rename("d").rename_axis(["family", "seed"]).reset_index()
    if d.empty:
        return None
    units, unit, n_families = _by_unit(d)
    return {"contrast": f"vp-lp_slope[{shots[0]}]-vp-lp_slope[full]", **summarise(units),
            "n_families": n_families, "unit": unit}
