"""Equivalence testing for a speed-up that changes numbers (bf16 autocast vs fp32).

Bit-for-bit equality is the wrong bar for a new study; the right one is whether the speed-up
moves any estimate the study reports by more than a stated margin. Two one-sided tests (TOST,
Schuirmann 1987) on the paired differences: equivalence at margin m is shown when both
H0: mean <= -m and H0: mean >= +m are rejected at alpha, i.e. when the 90% interval lies
inside (-m, +m). The pairs here are the same config run twice, so pairing removes all the
variance the two arms share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class TostResult:
    n: int
    mean: float
    sd: float
    margin: float
    p_lower: float  # H0: mean <= -margin
    p_upper: float  # H0: mean >= +margin
    ci90_low: float
    ci90_high: float

    @property
    def p(self) -> float:
        """The TOST p: the larger of the two one-sided p-values."""
        return max(self.p_lower, self.p_upper)

    def equivalent(self, alpha: float = 0.05) -> bool:
        return self.p < alpha


def tost_paired(differences, margin: float) -> TostResult:
    """TOST on paired differences (arm B - arm A) against the margin +-``margin``."""
    d = np.asarray(differences, dtype=float)
    if margin <= 0 or not np.isfinite(margin):
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    if len(d) < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"need at least two finite paired differences, got {len(d)}")
    n, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    se = sd / np.sqrt(n)
    if se == 0:  # identical arms, or a constant shift: decided by the shift alone
        inside = -margin < mean < margin
        p = 0.0 if inside else 1.0
        return TostResult(n, mean, sd, margin, p, p, mean, mean)
    p_lower = float(stats.t.sf((mean + margin) / se, n - 1))
    p_upper = float(stats.t.cdf((mean - margin) / se, n - 1))
    half = float(stats.t.ppf(0.95, n - 1)) * se
    return TostResult(n, mean, sd, margin, p_lower, p_upper, mean - half, mean + half)


def best_case_p(differences, missing: int, margin: float) -> float:
    """The smallest TOST p a design could still reach when ``missing`` of its planned pairs have
    not run: if even the most favourable values for them leave p >= alpha, running them cannot
    change the decision. For a given sum, equal values add the least variance, so the search is
    over one common value (a fine grid over +-10x the observed range, then the best point)."""
    d = np.asarray(differences, dtype=float)
    if missing < 0:
        raise ValueError(f"missing must be >= 0, got {missing}")
    if missing == 0:
        return tost_paired(d, margin).p
    span = 10 * (float(np.abs(d).max()) + margin)
    values = np.linspace(-span, span, 200_001)
    n, k = len(d), missing
    total = n + k
    mean = (d.sum() + k * values) / total
    ss = ((d[:, None] - mean[None, :]) ** 2).sum(axis=0) + k * (values - mean) ** 2
    se = np.sqrt(ss / (total - 1)) / np.sqrt(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.maximum(stats.t.sf((mean + margin) / se, total - 1), stats.t.cdf((mean - margin) / se, total - 1))
    return float(np.where(se > 0, p, np.where(np.abs(mean) < margin, 0.0, 1.0)).min())
