"""The inference behind every contrast: the crossed mixed model's estimate and interval (via
:mod:`lthvp.analysis.mixed`), the family-mean t-test and sign-flip p beside it as a
sensitivity analysis, and Holm's step-down correction."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from scipy import stats

from lthvp.analysis import mixed

MAX_EXACT_FLIPS = 16


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


def summarise(units: pd.Series | np.ndarray) -> dict:
    """Mean of the unit values with a 95% t-interval and the t and sign-flip p (the family-mean
    sensitivity analysis)."""
    v = np.asarray(units, dtype=float)
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


def crossed(diffs: pd.DataFrame) -> dict:
    """The crossed model's estimate, 95% interval and p for per-(family, seed) values ``d``, with
    the family-mean t-test beside it (``*_fm``, ``p_perm``)."""
    y = diffs["d"].to_numpy(float)
    fit = mixed.fit_crossed(diffs["family"].to_numpy(), diffs["seed"].to_numpy(), y)
    lo, hi = fit.interval()
    _, fam = np.unique(diffs["family"].astype(str).to_numpy(), return_inverse=True)
    # family means when there are >= 2 families, else the seeds themselves
    fm = summarise(np.bincount(fam, y) / np.bincount(fam) if fam.max(initial=0) >= 1 else y)
    sd = {k: float(np.sqrt(v)) if v == v else float("nan")
          for k, v in (("sd_family", fit.var_family), ("sd_seed", fit.var_seed), ("sd_resid", fit.var_resid))}
    return {"estimate": fit.estimate, "ci_low": lo, "ci_high": hi, "p": fit.p, "p_perm": fm["p_perm"],
            "se": fit.se, "df": fit.df, "ci_low_fm": fm["ci_low"], "ci_high_fm": fm["ci_high"], "p_fm": fm["p"],
            **sd, "n_families": fit.n_families, "n_seeds": fit.n_seeds, "unit": fit.unit,
            "balanced": fit.balanced, "fit": fit.fit}


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
