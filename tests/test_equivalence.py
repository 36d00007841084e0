"""TOST: exact expectations against hand computations and the decision's known behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lthvp.analysis.equivalence import tost_paired


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
