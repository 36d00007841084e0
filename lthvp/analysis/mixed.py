"""Crossed random-effects model for paired contrasts: ticket family and shot sample (seed).

Every family reuses the same seeds, and a seed fixes the shot sample, so one contrast value per
(family, seed) follows

    y_fs = mu + a_f + b_s + e_fs,   a_f ~ N(0, s2_f), b_s ~ N(0, s2_s), e_fs ~ N(0, s2_e),

with family and seed *crossed*. Averaging seeds inside a family and testing the family means
(the old analysis, kept as a sensitivity check) leaves the shared seed effects b_s out of the
spread between families: with a large seed component its interval is far too narrow.

Estimator (one rule, two computations):

* **Balanced** (complete F x S grid, the planned design): ANOVA mean squares MS_F, MS_S, MS_E
  (df F-1, S-1, (F-1)(S-1)) with E[MS_F] = s2_e + S s2_f, E[MS_S] = s2_e + F s2_s, E[MS_E] = s2_e.
  Var(mu_hat) = s2_f/F + s2_s/S + s2_e/(FS) = (th_F + th_S - th_E) / (FS), estimated with
  th_E = MS_E, th_F = max(MS_F, MS_E), th_S = max(MS_S, MS_E): the ANOVA estimators with a negative
  component set to zero. This is REML for s2_f, s2_s with s2_e held at MS_E; it equals plain REML
  whenever both components come out >= 0. Where one comes out negative, plain REML would pool its
  mean square into the residual and *shrink* the standard error; we do not, so the SE is never
  below the family-mean or the seed-mean analysis's (conservative with three families).
* **Unbalanced** (cells missing, ``all_runs``): the same REML (s2_e held at the residual mean
  square of the additive two-way fit), maximised numerically; on balanced data it returns the
  closed form.

Degrees of freedom: Satterthwaite over the mean squares that enter Var(mu_hat) (a zero component's
term and the -MS_E it cancels drop out together: df = S-1 when s2_f = 0, F-1 when s2_s = 0,
(F-1)(S-1) when both are 0). Exact in the balanced case; unbalanced data use the same formula with
the average cell counts n/F and n/S (an approximation). The negative -MS_E term makes the df
smaller than either factor's when the components are small: conservative.

One family: seeds are the replicates (one-sample t, unit ``seed``); one seed: families are.

Pure numpy/scipy: no torch, no Streamlit, nothing outside lthvp.analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, special, stats

ALPHA = 0.05
POWER = 0.80


@dataclass(frozen=True)
class CrossedFit:
    """mu_hat with its standard error and df, and the variance components (metric units squared)."""

    estimate: float
    se: float
    df: float
    var_family: float
    var_seed: float
    var_resid: float
    n_families: int
    n_seeds: int
    n: int
    balanced: bool
    fit: str  # "anova" (balanced closed form), "reml" (unbalanced), "seeds" / "families" (one-way t)

    @property
    def unit(self) -> str:
        return {"seeds": "seed", "families": "family"}.get(self.fit, "family x seed")

    @property
    def p(self) -> float:
        return t_p(self.estimate, self.se, self.df)

    def interval(self, level: float = 1 - ALPHA) -> tuple[float, float]:
        return t_interval(self.estimate, self.se, self.df, level)

    def mde(self, alpha: float = ALPHA, power_wanted: float = POWER) -> float:
        return mde(self.se, self.df, alpha, power_wanted)


def t_p(estimate: float, se: float, df: float) -> float:
    """Two-sided t p-value of estimate / se (se 0: 1 when the estimate is 0, else 0)."""
    if not (se == se and df == df and df > 0):
        return float("nan")
    if se <= 0:
        return 1.0 if estimate == 0 else 0.0
    return float(2 * stats.t.sf(abs(estimate / se), df))


def t_interval(estimate: float, se: float, df: float, level: float = 1 - ALPHA) -> tuple[float, float]:
    if not (se == se and df == df and df > 0):
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return estimate - half, estimate + half


def power(effect, se, df, alpha=ALPHA):
    """Power of the two-sided t-test at ``alpha`` against a true effect: P(|T| > t_crit) with T
    noncentral t (df, effect / se). Vectorised."""
    se, df = np.asarray(se, dtype=float), np.asarray(df, dtype=float)
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = np.abs(np.asarray(effect, dtype=float)) / se
    return 1 - special.nctdtr(df, nc, crit) + special.nctdtr(df, nc, -crit)


def mde(se, df, alpha=ALPHA, power_wanted: float = POWER):
    """Minimum detectable effect: the smallest true effect a two-sided t-test at ``alpha`` detects
    with probability ``power_wanted`` (noncentral t, solved by bisection; exact, where the usual
    (t_{1-alpha/2} + t_power) * se understates it at few df). Pass the corrected alpha (0.05 / m)
    to match a corrected decision. Vectorised (se, df and alpha broadcast); NaN where se or df is missing."""
    se_a, df_a, alpha = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (se, df, alpha)))
    ok = np.isfinite(se_a) & np.isfinite(df_a) & (df_a > 0) & (se_a >= 0)
    se1, df1 = np.where(ok, se_a, 1.0), np.where(ok, df_a, 1.0)
    lo = np.zeros_like(se1)
    hi = 2 * (stats.t.ppf(1 - alpha / 2, df1) + stats.t.ppf(power_wanted, df1))  # in units of se: power > wanted
    for _ in range(60):
        mid = (lo + hi) / 2
        below = power(mid, 1.0, df1, alpha) < power_wanted
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    out = np.where(ok, (lo + hi) / 2 * se1, np.nan)
    return float(out) if out.ndim == 0 else out


def satterthwaite(terms: list[tuple[float, float]]) -> float:
    """df of sum(c_k MS_k) from [(c_k MS_k, df_k)]: (sum c MS)^2 / sum (c MS)^2 / df."""
    total = sum(v for v, _ in terms)
    denominator = sum(v * v / d for v, d in terms)
    if denominator <= 0:
        return float(max(d for _, d in terms))  # every term zero: the values are all equal
    return float(total * total / denominator)


def _combine(theta_f: float, theta_s: float, theta_e: float, pos_f: bool, pos_s: bool,
             df_f: float, df_s: float, df_e: float, cells: float) -> tuple[float, float]:
    """Var(mu_hat) * cells = th_F + th_S - th_E with the terms of zero components dropped, and its
    Satterthwaite df."""
    if pos_f and pos_s:
        terms = [(theta_f, df_f), (theta_s, df_s), (-theta_e, df_e)]
    elif pos_f:
        terms = [(theta_f, df_f)]
    elif pos_s:
        terms = [(theta_s, df_s)]
    else:
        terms = [(theta_e, df_e)]
    return sum(v for v, _ in terms) / cells, satterthwaite(terms)


def one_way(y: np.ndarray, kind: str) -> CrossedFit:
    """One family (seeds are the replicates) or one seed (families are): the one-sample t."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    est = float(y.mean()) if n else float("nan")
    var = float(y.var(ddof=1)) if n > 1 else float("nan")
    se = math.sqrt(var / n) if n > 1 else float("nan")
    fam, seeds = (1, n) if kind == "seeds" else (n, 1)
    return CrossedFit(est, se, float(n - 1) if n > 1 else float("nan"), float("nan"), float("nan"), var,
                      fam, seeds, n, True, kind)


def fit_balanced(grid: np.ndarray) -> CrossedFit:
    """Closed form on a complete families x seeds grid (rows: families, columns: seeds)."""
    y = np.asarray(grid, dtype=float)
    n_f, n_s = y.shape
    if n_f < 2 or n_s < 2:
        return one_way(y.ravel(), "seeds" if n_f == 1 else "families")
    grand = y.mean()
    fam, seed = y.mean(axis=1), y.mean(axis=0)
    df_f, df_s, df_e = n_f - 1, n_s - 1, (n_f - 1) * (n_s - 1)
    ms_f = n_s * float(((fam - grand) ** 2).sum()) / df_f
    ms_s = n_f * float(((seed - grand) ** 2).sum()) / df_s
    ms_e = float(((y - fam[:, None] - seed[None, :] + grand) ** 2).sum()) / df_e
    pos_f, pos_s = ms_f > ms_e, ms_s > ms_e
    theta_f, theta_s = max(ms_f, ms_e), max(ms_s, ms_e)
    var, df = _combine(theta_f, theta_s, ms_e, pos_f, pos_s, df_f, df_s, df_e, n_f * n_s)
    return CrossedFit(float(grand), math.sqrt(max(var, 0.0)), df, (theta_f - ms_e) / n_s, (theta_s - ms_e) / n_f,
                      ms_e, n_f, n_s, n_f * n_s, True, "anova")


def _codes(values) -> tuple[np.ndarray, int]:
    _, codes = np.unique(np.asarray([str(v) for v in values]), return_inverse=True)
    return codes, int(codes.max()) + 1 if len(codes) else 0


def _dummies(codes: np.ndarray, k: int) -> np.ndarray:
    z = np.zeros((len(codes), k))
    z[np.arange(len(codes)), codes] = 1.0
    return z


def fit_reml(family, seed, y) -> CrossedFit:
    """The same estimator on any (family, seed) layout: REML for s2_f, s2_s >= 0 with s2_e held at
    the residual mean square of the additive fit y ~ family + seed (fixed effects), maximised with
    L-BFGS-B. Falls back to the family-mean one-way analysis when the layout leaves no residual df
    (e.g. each family with its own seeds)."""
    y = np.asarray(y, dtype=float)
    f, n_f = _codes(family)
    s, n_s = _codes(seed)
    n = len(y)
    if n_f < 2 or n_s < 2:
        return one_way(y, "seeds" if n_f < 2 else "families")
    zf, zs = _dummies(f, n_f), _dummies(s, n_s)
    additive = np.column_stack([np.ones(n), zf[:, 1:], zs[:, 1:]])
    coef, *_ = np.linalg.lstsq(additive, y, rcond=None)
    df_e = n - np.linalg.matrix_rank(additive)
    if df_e < 1:
        means = np.array([y[f == k].mean() for k in range(n_f)])
        return one_way(means, "families")
    s2_e = float(((y - additive @ coef) ** 2).sum() / df_e)
    balanced = n == n_f * n_s and len(set(zip(f.tolist(), s.tolist()))) == n
    if np.ptp(y) == 0:  # all values equal: nothing varies
        return CrossedFit(float(y[0]), 0.0, float(df_e), 0.0, 0.0, 0.0, n_f, n_s, n, balanced, "reml")
    scale = float(y.var()) or 1.0  # components searched in units of the total variance
    kf, ks = zf @ zf.T, zs @ zs.T
    ones = np.ones(n)

    def parts(g):
        v = max(s2_e, 1e-9 * scale) * np.eye(n) + scale * (g[0] * kf + g[1] * ks)  # floor: a perfect additive fit
        factor = linalg.cho_factor(v, lower=True, check_finite=False)
        vinv_1, vinv_y = linalg.cho_solve(factor, np.column_stack([ones, y]), check_finite=False).T
        info = float(ones @ vinv_1)
        mu = float(ones @ vinv_y) / info
        quad = float(y @ vinv_y) - mu * mu * info  # r' V^-1 r with r = y - mu
        return factor[0], info, mu, quad

    def objective(g):  # -2 x restricted log-likelihood, up to a constant
        chol, info, _, quad = parts(g)
        return 2 * float(np.log(np.diag(chol)).sum()) + math.log(info) + quad

    starts = ([0.0, 0.0], [1.0, 1.0], [0.1, 1.0], [1.0, 0.1])
    best = min((optimize.minimize(objective, np.array(x0), method="L-BFGS-B", bounds=[(0.0, 1e6)] * 2)
                for x0 in starts), key=lambda r: r.fun)
    g = np.where(best.x < 1e-7, 0.0, best.x)
    _, info, mu, _ = parts(g)
    var_f, var_s = float(scale * g[0]), float(scale * g[1])
    # Satterthwaite as if balanced with the average cell counts (see the module docstring)
    theta_f, theta_s = s2_e + n / n_f * var_f, s2_e + n / n_s * var_s
    _, df = _combine(theta_f, theta_s, s2_e, var_f > 0, var_s > 0, n_f - 1, n_s - 1, df_e, n)
    return CrossedFit(mu, math.sqrt(1.0 / info), df, var_f, var_s, s2_e, n_f, n_s, n, balanced, "reml")


def fit_crossed(family, seed, y) -> CrossedFit:
    """One value per (family, seed): the closed form when the grid is complete, REML otherwise."""
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        nan = float("nan")
        return CrossedFit(nan, nan, nan, nan, nan, nan, 0, 0, 0, True, "anova")
    f, n_f = _codes(family)
    s, n_s = _codes(seed)
    if len(y) == n_f * n_s and len(set(zip(f.tolist(), s.tolist()))) == len(y):
        grid = np.empty((n_f, n_s))
        grid[f, s] = y
        return fit_balanced(grid)
    return fit_reml(family, seed, y)


def bonferroni(p: np.ndarray) -> np.ndarray:
    """min(1, m p) over the m non-NaN p-values of one question (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    m = int(np.sum(~np.isnan(p)))
    return np.minimum(1.0, m * p)
