"""lthvp.analysis.mixed, the crossed family x seed model, against independent computations:
statsmodels MixedLM, hand-written mean squares, scipy's noncentral t, and simulated studies
shaped like the v3 design (10 families x 5 seeds) where the truth is known."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

from lthvp.analysis import mixed as M
from lthvp.analysis.effects import effects


def grid(families, seeds, sd_family, sd_seed, sd_resid, mu=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return (mu + rng.normal(0, sd_family, (families, 1)) + rng.normal(0, sd_seed, (1, seeds))
            + rng.normal(0, sd_resid, (families, seeds)))


def long(y):
    """(family codes, seed codes, values) of a families x seeds grid."""
    f, s = np.indices(y.shape)
    return f.ravel(), s.ravel(), y.ravel()


def mixedlm(family, seed, y):
    """statsmodels MixedLM, REML, one group holding everything, family and seed as variance components."""
    import statsmodels.api as sm

    data = pd.DataFrame({"family": family, "seed": seed, "y": y})
    model = sm.MixedLM.from_formula("y ~ 1", groups=np.ones(len(data)), re_formula="0", data=data,
                                    vc_formula={"family": "0 + C(family)", "seed": "0 + C(seed)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(reml=True)
    assert res.converged
    return res.fe_params.iloc[0], res.bse.iloc[0], res.vcomp, res.scale


def hand_mean_squares(y):
    """MS_family, MS_seed, MS_residual of a complete grid, with plain loops."""
    n_f, n_s = len(y), len(y[0])
    grand = sum(sum(row) for row in y) / (n_f * n_s)
    fam = [sum(row) / n_s for row in y]
    seed = [sum(y[i][j] for i in range(n_f)) / n_f for j in range(n_s)]
    ms_f = n_s * sum((m - grand) ** 2 for m in fam) / (n_f - 1)
    ms_s = n_f * sum((m - grand) ** 2 for m in seed) / (n_s - 1)
    ms_e = sum((y[i][j] - fam[i] - seed[j] + grand) ** 2 for i in range(n_f) for j in range(n_s)) / ((n_f - 1) * (n_s - 1))
    return ms_f, ms_s, ms_e


def test_balanced_closed_form_matches_statsmodels_mixedlm():
    """Both components clearly positive: the closed form is REML, so MixedLM finds the same fit."""
    y = grid(4, 3, 1.0, 2.0, 0.5, mu=1.0, seed=1)
    fit = M.fit_balanced(y)
    est, se, (var_f, var_s), scale = mixedlm(*long(y))
    assert fit.fit == "anova" and fit.var_family > 0 and fit.var_seed > 0
    assert fit.estimate == pytest.approx(est, rel=1e-9)
    assert fit.se == pytest.approx(se, rel=1e-4)
    assert (fit.var_family, fit.var_seed, fit.var_resid) == pytest.approx((var_f, var_s, scale), rel=1e-3)
    assert M.fit_crossed(*long(y)) == fit  # a complete grid given as rows takes the closed form


def test_closed_form_against_hand_mean_squares_and_satterthwaite():
    y = grid(5, 4, 1.0, 1.5, 0.7, seed=2)
    ms_f, ms_s, ms_e = hand_mean_squares(y.tolist())
    assert ms_f > ms_e and ms_s > ms_e
    fit = M.fit_balanced(y)
    var = (ms_f + ms_s - ms_e) / 20
    df = var ** 2 / ((ms_f / 20) ** 2 / 4 + (ms_s / 20) ** 2 / 3 + (ms_e / 20) ** 2 / 12)
    assert (fit.se, fit.df) == pytest.approx((math.sqrt(var), df), rel=1e-12)
    assert (fit.var_family, fit.var_seed, fit.var_resid) == pytest.approx(((ms_f - ms_e) / 4, (ms_s - ms_e) / 5, ms_e))
    half = stats.t.ppf(0.975, df) * math.sqrt(var)
    assert fit.interval() == pytest.approx((y.mean() - half, y.mean() + half), rel=1e-12)
    assert fit.p == pytest.approx(2 * stats.t.sf(abs(y.mean()) / math.sqrt(var), df), rel=1e-12)


def test_a_negative_component_is_zero_and_its_mean_square_is_not_pooled():
    """MS_family < MS_residual: s2_f = 0 and Var(mu) = MS_seed / (F S) with S - 1 df (the seed-mean
    test), not the pooled REML value; both negative: MS_residual with (F-1)(S-1) df."""
    y = np.array([[0.0, 1.0, 2.5], [0.1, 0.9, 2.6], [-0.1, 1.2, 2.4], [0.05, 0.95, 2.55]])
    y[:, 0] += [0.3, -0.3, 0.2, -0.2]  # residual noise without a family effect
    ms_f, ms_s, ms_e = hand_mean_squares(y.tolist())
    assert ms_f < ms_e < ms_s
    fit = M.fit_balanced(y)
    assert fit.var_family == 0 and fit.var_seed == pytest.approx((ms_s - ms_e) / 4)
    assert (fit.se, fit.df) == pytest.approx((math.sqrt(ms_s / 12), 2), rel=1e-12)
    seed_means = y.mean(axis=0)
    assert fit.se == pytest.approx(stats.sem(seed_means), rel=1e-12)  # the seed-mean t-test's SE
    flat = np.array([[0.3, -0.2, 0.1], [-0.1, 0.4, -0.3], [0.2, -0.4, 0.2]])
    ms_f, ms_s, ms_e = hand_mean_squares(flat.tolist())
    assert ms_f < ms_e and ms_s < ms_e
    fit = M.fit_balanced(flat)
    assert (fit.var_family, fit.var_seed, fit.se, fit.df) == pytest.approx((0, 0, math.sqrt(ms_e / 9), 4))


@pytest.mark.parametrize("case", [(1.0, 2.0, 0.5), (0.05, 2.0, 1.0), (1.0, 0.05, 1.0), (0.01, 0.01, 1.0)])
def test_general_reml_is_the_closed_form_on_balanced_data(case):
    """The unbalanced path (numerical REML, s2_e held at the additive fit's residual) returns the
    closed form on a complete grid, also where components are truncated at zero."""
    y = grid(4, 5, *case, seed=3)
    closed, general = M.fit_balanced(y), M.fit_reml(*long(y))
    assert general.fit == "reml" and general.balanced
    assert general.estimate == pytest.approx(closed.estimate, rel=1e-6)
    assert general.se == pytest.approx(closed.se, rel=1e-4)
    assert general.df == pytest.approx(closed.df, rel=1e-3)
    assert (general.var_family, general.var_seed) == pytest.approx((closed.var_family, closed.var_seed), abs=1e-4)


def test_unbalanced_data_take_reml_close_to_mixedlm():
    """Three cells missing from a 10 x 5 grid: REML; MixedLM (residual estimated jointly) agrees closely."""
    y = grid(10, 5, 1.0, 2.0, 1.0, seed=3)
    f, s, v = long(y)
    keep = np.ones(len(v), bool)
    keep[[3, 17, 44]] = False
    fit = M.fit_crossed(f[keep], s[keep], v[keep])
    est, se, (var_f, var_s), _ = mixedlm(f[keep], s[keep], v[keep])
    assert fit.fit == "reml" and not fit.balanced and fit.n == 47
    assert fit.estimate == pytest.approx(est, abs=1e-3 * se)
    assert fit.se == pytest.approx(se, rel=0.01)
    assert (fit.var_family, fit.var_seed) == pytest.approx((var_f, var_s), rel=0.02)
    assert 4 <= fit.df <= 36


def test_one_family_or_one_seed_is_the_one_sample_t():
    y = np.array([0.3, 0.1, 0.5, 0.2, 0.45])
    for family, seed, unit in ((np.zeros(5), np.arange(5), "seed"), (np.arange(5), np.zeros(5), "family")):
        fit = M.fit_crossed(family, seed, y)
        lo, hi = stats.t.interval(0.95, 4, loc=y.mean(), scale=stats.sem(y))
        assert fit.unit == unit and fit.interval() == pytest.approx((lo, hi), rel=1e-12)
        assert fit.p == pytest.approx(stats.ttest_1samp(y, 0).pvalue, rel=1e-12)


def test_mde_is_the_noncentral_t_solution():
    """MDE at 80% power: scipy's noncentral t gives 80% power there; it exceeds the textbook
    (t_{1-a/2} + t_{0.8}) * se at few df and reaches (1.959964 + 0.841621) * se for large df."""
    for se, df, alpha in ((0.01, 8, 0.05 / 4), (0.02, 2.3, 0.05), (1.0, 14, 0.05 / 3)):
        crit = stats.t.ppf(1 - alpha / 2, df)

        def power(d):  # P(|Z + d/se| > crit sqrt(V/df)), V ~ chi2(df), integrated over V
            def given(v):
                c = crit * math.sqrt(v / df)
                return stats.norm.cdf(-c - d / se) + stats.norm.sf(c - d / se)
            return integrate.quad(lambda v: given(v) * stats.chi2.pdf(v, df), 0, np.inf)[0]

        want = optimize.brentq(lambda d: power(d) - 0.8, 0, 12 * se, xtol=1e-12)
        assert M.mde(se, df, alpha) == pytest.approx(want, rel=1e-6)
        assert M.mde(se, df, alpha) > (crit + stats.t.ppf(0.8, df)) * se
    assert M.mde(1.0, 1e9) == pytest.approx(1.959964 + 0.841621, abs=1e-4)
    assert math.isnan(M.mde(float("nan"), 4))
    np.testing.assert_allclose(M.mde(np.array([1.0, 2.0]), np.array([8.0, 8.0]), np.array([0.05, 0.05])),
                               [M.mde(1.0, 8.0), 2 * M.mde(1.0, 8.0)], rtol=1e-9)


def v3_table(n_sets, mu, sd_family, sd_seed, sd_resid, seed, families=10, seeds=5):
    """Runs shaped like the v3 design: families x seeds, VP at levels 0 and 8, one independent
    dataset per shot count. L8 - L0 in (family, seed) = mu + a_family + b_seed + e (crossed)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, sd_family, (n_sets, families, 1))
    b = rng.normal(0, sd_seed, (n_sets, 1, seeds))
    e = rng.normal(0, sd_resid, (n_sets, families, seeds))
    dense = 0.7 + rng.normal(0, 0.02, (n_sets, families, seeds))
    k, f, s = (x.ravel() for x in np.indices((n_sets, families, seeds)))
    part = dict(dataset="d", method="vp", arm="ticket", shots=k.astype(str), family=f, seed=s)
    return pd.concat([pd.DataFrame({**part, "level": 0, "remaining_fraction": 1.0, "accuracy": dense.ravel()}),
                      pd.DataFrame({**part, "level": 8, "remaining_fraction": 0.8 ** 8,
                                    "accuracy": (dense + mu + a + b + e).ravel()})], ignore_index=True)


@pytest.mark.slow  # 400 simulated studies through effects(): ~10 s
def test_crossed_intervals_cover_the_planted_effect_and_family_means_do_not():
    """10 families x 5 seeds, mu = -2 points, sd family 1, seed 2, residual 1.5 points: over 400
    datasets the crossed 95% intervals cover mu 92-97% of the time and the estimates centre on it;
    the family-mean t-test (blind to the seed effects every family shares) covers far less."""
    mu, rows = -0.02, []
    for rep in range(10):
        out = effects(v3_table(40, mu, 0.01, 0.02, 0.015, seed=200 + rep), "accuracy")
        rows.append(out[(out["contrast"] == "L8-L0") & (out["method"] == "vp")])
    res = pd.concat(rows)
    assert len(res) == 400 and set(res["unit"]) == {"family x seed"} and res["balanced"].all()
    covered = ((res["ci_low"] <= mu) & (mu <= res["ci_high"])).mean()
    covered_fm = ((res["ci_low_fm"] <= mu) & (mu <= res["ci_high_fm"])).mean()
    assert 0.92 <= covered <= 0.97, covered
    assert covered_fm < 0.8, covered_fm
    sd_mu = math.sqrt(0.01 ** 2 / 10 + 0.02 ** 2 / 5 + 0.015 ** 2 / 50)  # the true sd of the estimate
    assert abs(res["estimate"].mean() - mu) < 3 * sd_mu / math.sqrt(400)
    assert res["se"].median() == pytest.approx(sd_mu, rel=0.15)
    assert res["sd_seed"].median() == pytest.approx(0.02, rel=0.3)


def test_simultaneous_interval_excludes_zero_iff_corrected_p_below_005():
    """Bonferroni over the shot counts: the adjusted interval misses 0 exactly when p_adj < 0.05,
    over effects from clearly null to clearly detected (and the rows that fall near the line)."""
    frames = [v3_table(12, mu, 0.01, 0.01, 0.01, seed=50 + i) for i, mu in enumerate((0.0, 0.01, 0.02, 0.03))]
    out = pd.concat([effects(t.assign(dataset=f"d{i}"), "accuracy") for i, t in enumerate(frames)])
    out = out[out["contrast"] == "L8-L0"]
    excludes = (out["ci_low_adj"] > 0) | (out["ci_high_adj"] < 0)
    assert (excludes == (out["p_adj"] < 0.05)).all()
    assert 5 < excludes.sum() < len(out) - 5  # both outcomes occur
    m = out.groupby(["dataset", "test_family"])["p"].transform("count")
    np.testing.assert_allclose(out["p_adj"], np.minimum(1, m * out["p"]), rtol=1e-12)
    # the simultaneous interval is the (1 - 0.05 / m) t-interval of the same fit
    q = stats.t.ppf(1 - 0.05 / (2 * m), out["df"])
    np.testing.assert_allclose(out["ci_high_adj"], out["estimate"] + q * out["se"], rtol=1e-12)
    assert ((out["ci_low_adj"] <= out["ci_low"]) & (out["ci_high"] <= out["ci_high_adj"])).all()
