"""TOST: exact expectations against hand computations and the decision's known behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lthvp.analysis.equivalence import best_case_p, tost_paired


def test_tost_matches_the_two_one_sided_t_tests_by_hand():
    d = np.array([0.2, -0.1, 0.4, 0.0, 0.3, -0.2, 0.1, 0.25])
    r = tost_paired(d, 1.0)
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert r.p_lower == pytest.approx(stats.ttest_1samp(d, -1.0, alternative="greater").pvalue, rel=1e-9)
    assert r.p_upper == pytest.approx(stats.ttest_1samp(d, 1.0, alternative="less").pvalue, rel=1e-9)
    assert r.p == max(r.p_lower, r.p_upper) and r.equivalent()
    assert (r.ci90_low, r.ci90_high) == pytest.approx((d.mean() - stats.t.ppf(0.95, 7) * se,
                                                       d.mean() + stats.t.ppf(0.95, 7) * se))


def test_equivalence_iff_the_90_interval_lies_inside_the_margin():
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.normal(rng.uniform(-1.5, 1.5), rng.uniform(0.1, 2.0), size=int(rng.integers(3, 60)))
        r = tost_paired(d, 1.0)
        assert r.equivalent() == (-1.0 < r.ci90_low and r.ci90_high < 1.0)


def test_a_shift_beyond_the_margin_is_never_equivalent_and_noise_needs_enough_pairs():
    assert not tost_paired(np.full(40, 1.2) + np.linspace(-0.01, 0.01, 40), 1.0).equivalent()
    assert not tost_paired([0.0, 3.0, -3.0], 1.0).equivalent()  # too noisy to tell
    assert tost_paired(np.zeros(5), 1.0).equivalent()  # identical arms
    with pytest.raises(ValueError, match="margin"):
        tost_paired([0.1, 0.2], 0)
    with pytest.raises(ValueError, match="two finite"):
        tost_paired([0.1, float("nan")], 1.0)


def test_best_case_p_is_the_tost_p_when_nothing_is_missing_and_never_above_any_completion():
    rng = np.random.default_rng(3)
    d = rng.normal(1.7, 4.2, size=48)
    assert best_case_p(d, 0, 1.0) == tost_paired(d, 1.0).p
    best = best_case_p(d, 8, 1.0)
    for value in (-20.0, -10.0, -5.0, 0.0, 1.7, 5.0):
        assert best <= tost_paired(np.concatenate([d, np.full(8, value)]), 1.0).p + 1e-12
    assert best <= min(tost_paired(np.concatenate([d, rng.normal(-8, 3, 8)]), 1.0).p for _ in range(50))


def test_best_case_p_finds_a_rescue_when_one_exists_and_not_when_it_does_not():
    shifted = np.full(10, 3.0) + np.linspace(-0.1, 0.1, 10)  # mean 3: far outside +-1
    assert tost_paired(shifted, 1.0).p > 0.5
    assert best_case_p(shifted, 90, 1.0) < 0.05  # 90 pairs at about -0.33 pull the mean inside
    assert best_case_p(shifted, 2, 1.0) > 0.05  # 2 pairs cannot, whatever they are
