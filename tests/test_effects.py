"""lthvp.analysis.effects against independent computations (scipy/numpy written from scratch here):
crossed family x seed contrasts with the family-mean test beside them, slopes and their shape,
Holm and Bonferroni, exact sign flips, null calibration, planned replicates, the CLI and the
shipped v2 bundle."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lthvp.analysis import effects as E
from lthvp.analysis.effects import COLUMNS, effects, holm, sign_flip_p, verdict

BUNDLE = Path(__file__).parent / "fixtures" / "mini_digits_v1.zip"
TRUE_SLOPE = {"vp": -0.05, "lp": -0.01, "map": -0.03}  # accuracy change per halving of the weights


def make_table(families=6, seeds=5, shots=("1", "5", "full"), methods=("vp", "lp", "map"),
               arms=("ticket", "random"), levels=range(9), slope=TRUE_SLOPE, noise=0.005,
               family_sd=0.0, seed=0):
    """One row per run. Accuracy = 0.7 + slope * halvings + per-(family, level) ticket effect + noise;
    random pruning costs 0.02 extra at every level."""
    rng = np.random.default_rng(seed)
    fam_effect = {(f, lv): (rng.normal(0, family_sd) if lv else 0.0) for f in range(families) for lv in levels}
    rows = []
    for m in methods:
        for arm in arms:
            for sh in shots:
                for f in range(families):
                    for s in range(seeds):
                        for lv in levels:
                            if arm == "random" and lv == 0:
                                continue
                            acc = (0.7 + slope.get(m, 0.0) * -math.log2(0.8 ** lv) + fam_effect[(f, lv)]
                                   - (0.02 if arm == "random" else 0.0) + rng.normal(0, noise))
                            rows.append(dict(dataset="d", method=m, arm=arm, shots=sh, level=lv, seed=s,
                                             family=f, remaining_fraction=0.8 ** lv, accuracy=acc,
                                             ece=abs(rng.normal(0.05, 0.01))))
    return pd.DataFrame(rows)


def lookup(df, metric="accuracy"):
    """{(method, arm, shots, level, family, seed): value} built with plain Python."""
    return {(r.method, r.arm, r.shots, r.level, r.family, r.seed): getattr(r, metric) for r in df.itertuples()}


def family_means(pairs):
    """pairs: {(family, seed): d} -> array of per-family means (plain loops, no pandas groupby)."""
    acc = {}
    for (f, _), d in pairs.items():
        acc.setdefault(f, []).append(d)
    return np.array([np.mean(v) for _, v in sorted(acc.items())])


def hand_crossed(pairs):
    """pairs: {(family, seed): d} on a complete grid -> (estimate, ci_low, ci_high, p) of the crossed
    model written out with loops: ANOVA mean squares, a negative component set to 0 (its mean
    square not pooled), Satterthwaite df over the mean squares that remain."""
    fams, seeds = sorted({f for f, _ in pairs}), sorted({s for _, s in pairs})
    n_f, n_s = len(fams), len(seeds)
    y = [[pairs[(f, s)] for s in seeds] for f in fams]
    grand = sum(map(sum, y)) / (n_f * n_s)
    fm = [sum(row) / n_s for row in y]
    sm = [sum(y[i][j] for i in range(n_f)) / n_f for j in range(n_s)]
    ms_f = n_s * sum((m - grand) ** 2 for m in fm) / (n_f - 1)
    ms_s = n_f * sum((m - grand) ** 2 for m in sm) / (n_s - 1)
    ms_e = sum((y[i][j] - fm[i] - sm[j] + grand) ** 2 for i in range(n_f) for j in range(n_s)) / ((n_f - 1) * (n_s - 1))
    if ms_f > ms_e and ms_s > ms_e:
        terms = [(ms_f, n_f - 1), (ms_s, n_s - 1), (-ms_e, (n_f - 1) * (n_s - 1))]
    elif ms_f > ms_e:
        terms = [(ms_f, n_f - 1)]
    elif ms_s > ms_e:
        terms = [(ms_s, n_s - 1)]
    else:
        terms = [(ms_e, (n_f - 1) * (n_s - 1))]
    var = sum(v for v, _ in terms) / (n_f * n_s)
    dof = sum(v for v, _ in terms) ** 2 / sum(v * v / d for v, d in terms)
    se = math.sqrt(var)
    half = stats.t.ppf(0.975, dof) * se
    return grand, grand - half, grand + half, 2 * stats.t.sf(abs(grand) / se, dof)


def t_summary(v):
    res = stats.ttest_1samp(v, 0.0)
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    return np.mean(v), lo, hi, res.pvalue


def one(out, **kw):
    sel = out
    for k, v in kw.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, kw
    return sel.iloc[0]


@pytest.fixture(scope="module")
def table():
    return make_table(family_sd=0.01)


@pytest.fixture(scope="module")
def out(table):
    return effects(table, "accuracy")


def test_level_contrast_is_crossed_with_the_family_mean_test_beside(table, out):
    """L{k}-L0: paired within (family, seed); the crossed family x seed model gives the estimate,
    interval and p, the t-test between family means (seeds averaged) the *_fm columns."""
    val = lookup(table)
    for arm, k in [("ticket", 8), ("random", 3)]:
        pairs = {(f, s): val[("vp", arm, "5", k, f, s)] - val[("vp", "ticket", "5", 0, f, s)]
                 for f in range(6) for s in range(5)}
        row = one(out, method="vp", arm=arm, shots="5", contrast=f"L{k}-L0")
        assert (row.estimate, row.ci_low, row.ci_high, row.p) == pytest.approx(hand_crossed(pairs), rel=1e-9)
        est, lo, hi, p = t_summary(family_means(pairs))
        assert (row.estimate, row.ci_low_fm, row.ci_high_fm, row.p_fm) == pytest.approx((est, lo, hi, p), rel=1e-9)
        assert (row.unit, row.n_families, row.n_seeds, row.n_runs) == ("family x seed", 6, 5, 60)
        assert row.balanced and row.fit == "anova"


def test_single_family_uses_seeds_as_units():
    """Legacy study (one family): every seed is a replicate and the row says so."""
    df = make_table(families=1, seeds=4, methods=("vp",), arms=("ticket",), shots=("1",))
    df["family"] = None
    val = lookup(df)
    d = np.array([val[("vp", "ticket", "1", 8, None, s)] - val[("vp", "ticket", "1", 0, None, s)] for s in range(4)])
    row = one(effects(df), contrast="L8-L0")
    assert (row.estimate, row.ci_low, row.ci_high, row.p) == pytest.approx(t_summary(d), rel=1e-9)
    assert (row.unit, row.n_families) == ("seed", 1)


def test_slopes_and_paired_arm_contrasts(table, out):
    """slope / vp-lp_slope via linregress per (family, seed); imp-random and vp-map as paired diffs."""
    val = lookup(table)
    x = np.array([-math.log2(0.8 ** lv) for lv in range(9)])

    def slope(m, f, s):
        return stats.linregress(x, [val[(m, "ticket", "full", lv, f, s)] for lv in range(9)]).slope

    keys = [(f, s) for f in range(6) for s in range(5)]
    expected = {
        ("vp", "ticket", "slope"): {k: slope("vp", *k) for k in keys},
        ("vp-lp", "ticket", "vp-lp_slope"): {k: slope("vp", *k) - slope("lp", *k) for k in keys},
        ("lp", "imp-random", "imp-random_L4"): {(f, s): val[("lp", "ticket", "full", 4, f, s)]
                                                - val[("lp", "random", "full", 4, f, s)] for f, s in keys},
        ("vp-map", "ticket", "vp-map_L6"): {(f, s): val[("vp", "ticket", "full", 6, f, s)]
                                            - val[("map", "ticket", "full", 6, f, s)] for f, s in keys},
    }
    for (method, arm, contrast), pairs in expected.items():
        row = one(out, method=method, arm=arm, shots="full", contrast=contrast)
        assert (row.estimate, row.ci_low, row.ci_high, row.p) == pytest.approx(hand_crossed(pairs), rel=1e-7)
        est, lo, hi, p = t_summary(family_means(pairs))
        assert (row.ci_low_fm, row.ci_high_fm, row.p_fm) == pytest.approx((lo, hi, p), rel=1e-7)
    assert one(out, method="lp", arm="imp-random", shots="full", contrast="imp-random_L4").estimate == \
        pytest.approx(0.02, abs=0.01)


def hand_holm(p):
    """Step-down Holm: sort, multiply the i-th smallest by (m - i), enforce monotonicity, cap at 1."""
    p = np.asarray(p, dtype=float)
    adj = np.full(len(p), np.nan)
    idx = [i for i in range(len(p)) if not np.isnan(p[i])]
    idx.sort(key=lambda i: p[i])
    scaled = [min(1.0, (len(idx) - r) * p[i]) for r, i in enumerate(idx)]
    for r, i in enumerate(idx):
        adj[i] = max(scaled[: r + 1])
    return adj


def test_holm_and_bonferroni_match_hand_written(out):
    """p_holm and p_adj (Bonferroni) run over the shot counts of one question (test_family), nothing
    wider; the simultaneous intervals excluding 0 are exactly the p_adj < 0.05 rows."""
    assert out.groupby("test_family")["shots"].nunique().max() == 3
    for _, g in out.groupby("test_family"):
        np.testing.assert_allclose(g["p_holm"].to_numpy(), hand_holm(g["p"].to_numpy()), rtol=1e-12)
        np.testing.assert_allclose(g["p_adj"].to_numpy(), np.minimum(1, len(g) * g["p"].to_numpy()), rtol=1e-12)
        assert (g["p_holm"] <= g["p_adj"] + 1e-15).all()
    excludes = (out["ci_low_adj"] > 0) | (out["ci_high_adj"] < 0)
    assert (excludes == (out["p_adj"] < 0.05)).all() and 0 < excludes.sum() < len(out)
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04, 0.03]), [0.03, np.nan, 0.06, 0.06], rtol=1e-12)
    np.testing.assert_allclose(holm([0.2, 0.3, 0.6]), [0.6, 0.6, 0.6])
    np.testing.assert_allclose(holm([0.3, 0.2]), [0.4, 0.4])
    assert np.isnan(holm([np.nan, np.nan])).all()


def brute_sign_flip(v):
    """Enumerate sign patterns through the bits of an integer; count |sum| at least the observed."""
    v = np.asarray(v, dtype=float)
    n = len(v)
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
    sums = np.abs(((1 - 2 * bits) * v).sum(axis=1))
    return np.mean(sums >= abs(v.sum()) - 1e-9)


@pytest.mark.parametrize("v", [[0.3, -0.1, 0.2], [1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.0],
                               list(np.random.default_rng(3).normal(0.2, 1, 12))])
def test_sign_flip_exact(v):
    """Exact for n <= 16: equals brute enumeration (all-positive n=5 gives 2/32)."""
    assert sign_flip_p(np.array(v)) == pytest.approx(brute_sign_flip(v), abs=1e-12)


def test_sign_flip_monte_carlo_close_to_exact():
    """n > 16 draws random patterns; with 20000 draws it lies within ~4 s.e. of the exact p."""
    v = np.random.default_rng(7).normal(0.4, 1.0, 18)
    exact = brute_sign_flip(v)
    assert 0.02 < exact < 0.5
    assert abs(sign_flip_p(v, seed=1) - exact) < 4 * math.sqrt(exact * (1 - exact) / 20000)
    assert math.isnan(sign_flip_p(np.array([])))


def test_known_slope_difference_detected():
    """True VP-LP slope difference -0.04 per halving with small noise: detected, CI covers truth."""
    df = make_table(families=6, seeds=5, methods=("vp", "lp"), arms=("ticket",), noise=0.02, family_sd=0.01)
    res = effects(df)
    rows = res[res.contrast == "vp-lp_slope"]
    assert len(rows) == 3
    for _, row in rows.iterrows():
        assert row.p_holm < 0.05
        assert row.ci_low < -0.04 < row.ci_high
        assert "detected at 5%" in verdict(row) and "not detected" not in verdict(row)


@pytest.mark.slow  # many simulated studies
def test_null_calibration():
    """No effect, between-family variance on the sparsity effect and no seed effect: the family-mean
    t test rejects ~5% of the time, the sign-flip test no more than ~5%, and the crossed model no
    more than ~5% (conservative here: with the seed component truly 0 its Satterthwaite df shrink
    whenever the seed mean square happens to exceed the residual's). 40 shot counts x 10 tables."""
    shots = tuple(str(i) for i in range(40))
    ps, perms, crossed = [], [], []
    for rep in range(10):
        df = make_table(families=8, seeds=3, shots=shots, methods=("vp",), arms=("ticket",), levels=(0, 8),
                        slope={}, noise=0.02, family_sd=0.03, seed=100 + rep)
        rows = effects(df).query("contrast == 'L8-L0'")
        assert len(rows) == 40
        ps += list(rows.p_fm)
        perms += list(rows.p_perm)
        crossed += list(rows.p)
    assert 0.02 <= np.mean(np.array(ps) < 0.05) <= 0.09
    assert np.mean(np.array(perms) <= 0.05) <= 0.08
    assert 0.005 <= np.mean(np.array(crossed) < 0.05) <= 0.07


def test_input_handling(table):
    """Unknown metric raises; empty input -> empty frame with the columns; NaN metric rows dropped."""
    with pytest.raises(ValueError, match="unknown metric"):
        effects(table, "f1")
    for empty in (pd.DataFrame(), table.iloc[:0]):
        res = effects(empty)
        assert res.empty and list(res.columns) == ["dataset"] + COLUMNS
    small = make_table(families=3, seeds=3, shots=("1",), methods=("vp", "lp"), seed=5)
    small["ts_ece"] = small["ece"]
    old = small.sample(frac=0.3, random_state=0).index
    small.loc[old, "ts_ece"] = np.nan  # old records have no temperature-scaled metrics
    got = effects(small, "ts_ece")
    want = effects(small.drop(index=old), "ts_ece")
    assert len(got) > 10
    pd.testing.assert_frame_equal(got, want)
    assert effects(small.assign(ts_ece=np.nan), "ts_ece").empty


def test_verdict_text():
    """The one-line verdict follows p_adj (p_holm in tables without it): detected / not detected /
    not testable; not detected says what the data could have detected (the MDE)."""
    base = dict(estimate=-0.1, ci_low=-0.2, ci_high=-0.01, n_families=6, unit="family")
    crossed = {**base, "unit": "family x seed", "n_seeds": 5, "p_holm": 0.01, "mde": 0.123}
    assert verdict({**crossed, "p_adj": 0.02}).startswith("detected at 5% after Bonferroni over the shot counts")
    assert "6 families x 5 seeds (crossed)" in verdict({**crossed, "p_adj": 0.02})
    assert "could have detected" not in verdict({**crossed, "p_adj": 0.02})
    said = verdict({**crossed, "p_adj": 0.2}, metric="accuracy")  # p_holm 0.01 is not the decision
    assert said.startswith("not detected") and said.endswith("could have detected >= 12.30 pts (80% power)")
    assert verdict({**base, "p_holm": 0.01}).startswith("detected at 5% after Holm")
    assert verdict({**base, "p_holm": 0.2}).startswith("not detected")
    assert verdict({**base, "p_holm": float("nan")}).startswith("not testable")
    assert "6 families (family as unit)" in verdict({**base, "p_holm": 0.01})
    assert "1 family (seed as unit)" in verdict({**base, "p_holm": 0.01, "n_families": 1, "unit": "seed"})
    assert "estimate -0.1000 [-0.2000, -0.0100]" in verdict({**base, "p_holm": 0.01}, metric="nll")
    assert "estimate -10.00 pts [-20.00, -1.00]" in verdict({**base, "p_holm": 0.01}, metric="accuracy")


def test_cli_json_matches_scipy_on_bundle(capsys):
    """`effects --bundle --json` rows recomputed from the bundle's records (legacy: seeds = units)."""
    from lthvp.commands.cli import main
    from lthvp.results.store import read_bundle

    assert main(["effects", "--bundle", str(BUNDLE), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    keys = {"method", "arm", "shots", "contrast", "estimate", "ci_low", "ci_high", "p", "p_holm", "n_families", "n_runs",
            "p_adj", "ci_low_adj", "ci_high_adj", "mde", "ci_low_fm", "ci_high_fm", "p_fm"}
    assert len(rows) > 20 and all(keys <= set(r) for r in rows)
    acc = {}
    for rec in read_bundle(BUNDLE):
        c = rec.config  # a RunConfig
        if c.method == "vp" and c.arm == "ticket":
            acc[(str(c.shots), c.level, c.seed)] = rec.metrics["accuracy"]
    ps = {}
    for sh in ("1", "2", "5", "10", "full"):
        seeds = sorted(s for (x, lv, s) in acc if x == sh and lv == 8)
        d = np.array([acc[(sh, 8, s)] - acc[(sh, 0, s)] for s in seeds])
        ps[sh] = stats.ttest_1samp(d, 0.0).pvalue
        if sh == "5":
            est, lo, hi, p = t_summary(d)
            n = len(d)
    ph = dict(zip(ps, hand_holm(list(ps.values()))))
    row = [r for r in rows if (r["method"], r["arm"], r["shots"], r["contrast"]) == ("vp", "ticket", "5", "L8-L0")]
    assert len(row) == 1
    row = row[0]
    assert (row["estimate"], row["ci_low"], row["ci_high"], row["p"]) == pytest.approx((est, lo, hi, p), rel=1e-9)
    assert row["p_holm"] == pytest.approx(ph["5"], rel=1e-9)
    assert (row["n_families"], row["n_runs"], row["unit"]) == (1, 2 * n, "seed")


def test_slope_per_replicate_matches_polyfit_and_skips_one_level_groups():
    from lthvp.analysis.effects import slope_per_replicate

    rng = np.random.default_rng(3)
    rows = [dict(family=f, seed=s, halvings=h, accuracy=rng.normal()) for f in (0, 1) for s in (0, 1, 2)
            for h in ((0.0, 0.64, 1.29, 2.58) if (f, s) != (1, 2) else (0.64, 0.64))]
    got = slope_per_replicate(pd.DataFrame(rows), "accuracy")
    by_group = pd.DataFrame(rows).groupby(["family", "seed"])
    want = {k: np.polyfit(g["halvings"], g["accuracy"], 1)[0] for k, g in by_group if g["halvings"].nunique() > 1}
    assert sorted(got.index) == sorted(want) and (1, 2) not in got.index
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12)


def test_main_protocol_keeps_the_most_common_protocol_per_method_and_shots():
    from lthvp.analysis.effects import main_protocol

    rows = ([dict(method="vp", shots="5", lr=0.1, epochs=None)] * 3 + [dict(method="vp", shots="5", lr=1.0, epochs=None)]
            + [dict(method="vp", shots="full", lr=1.0, epochs=None)] * 2 + [dict(method="vp", shots="full", lr=1.0, epochs=5)]
            + [dict(method="lp", shots="5", lr=0.01, epochs=None), dict(method="lp", shots="5", lr=0.02, epochs=None)])
    kept = main_protocol(pd.DataFrame(rows))
    assert kept.index.tolist() == [0, 1, 2, 4, 5, 7]  # vp 5-shot lr 0.1; vp full without epochs; lp tie: first seen


def test_findings_state_each_claim_with_its_verdict_and_prompt_movement():
    from lthvp.analysis.findings import CLAIMS, findings_markdown

    table = make_table(families=4, seeds=3, shots=("1", "full"))
    table["prompt_shift"] = np.where(table["method"] == "vp", 0.1 + 0.01 * table["level"], np.nan)
    text = findings_markdown(table, "d")
    assert "4 ticket families" in text
    for title, *_ in CLAIMS[:3]:
        assert title in text
    header = next(line for line in text.splitlines() if line.startswith("| claim"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[:6] == ["claim", "shots", "estimate [95% CI]", "simultaneous CI", "adj. p", "MDE"]
    vp_lp = next(line for line in text.splitlines() if line.startswith("| Sparsity costs VP more than LP"))
    cells = [c.strip() for c in vp_lp.strip("|").split("|")]
    estimate = float(cells[2].split()[0])
    assert "**detected**" in vp_lp and -4.5 < estimate < -3.5  # true gap -0.04 per halving = -4 points
    assert "against the claim" not in vp_lp
    row = one(effects(table, "accuracy", "d"), method="vp-lp", shots="1", contrast="vp-lp_slope")
    assert float(cells[5]) == pytest.approx(100 * row.mde, abs=0.006)  # the MDE column, in points
    assert float(cells[4]) == pytest.approx(row.p_adj, rel=1e-2)
    assert cells[7].startswith("L1 ") and cells[7].count(" / ") == 7  # the per-level estimates beside the slope
    assert cells[9] == "4 x 3 (crossed)"
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ") and "/255" not in line}
    assert "25.5 (25.5-25.5)" in rows["1"] and "45.9 (45.9-45.9)" in rows["1"]  # 255 * 0.10 at L0, 255 * 0.18 at L8
    assert rows["1"].rstrip(" |").endswith("12 / 12")  # the runs behind each level's cell: 4 families x 3 seeds


def test_a_detected_effect_against_the_claim_says_so():
    from lthvp.analysis.findings import claim_verdict

    assert claim_verdict(0.001, -0.03, -1) == "**detected**"  # VP loses more, as the paper claims
    assert claim_verdict(0.001, +0.03, -1) == "**detected, against the claim**"
    assert claim_verdict(0.001, +0.03, 0) == "**detected**"  # a two-sided question has no wrong side
    assert claim_verdict(0.2, +0.03, -1) == "not detected"
    assert claim_verdict(float("nan"), +0.03, -1) == "not testable"


def test_family_keys_are_idempotent_and_the_pairing_is_shared_with_the_plots():
    from lthvp.analysis.pairing import family_keys, minus_dense
    from lthvp.analysis.report import paired_difference

    keys = family_keys([0, 1.0, None, float("nan")])
    assert keys == ["0", "1", "legacy", "legacy"] and family_keys(keys) == keys
    table = make_table(families=2, seeds=2, shots=("1",), methods=("vp",), arms=("ticket",), levels=(0, 4))
    table["dataset"] = "d"
    drawn = paired_difference(table, "accuracy", "dense")
    assert drawn.equals(minus_dense(table, "accuracy"))
    tested = effects(table, "accuracy")
    row = tested[(tested["contrast"] == "L4-L0") & (tested["method"] == "vp")].iloc[0]
    assert row["estimate"] == pytest.approx(drawn[drawn["level"] == 4].groupby("family")["delta"].mean().mean())


def test_vp_lp_per_level_contrasts_and_per_level_beside_slopes(out):
    """method vp-lp, L{k}-L0: VP's paired difference minus LP's (balanced: the difference of their
    estimates); each slope row lists the L{k}-L0 estimates it summarises."""
    for k in (2, 8):
        row = one(out, method="vp-lp", arm="ticket", shots="1", contrast=f"L{k}-L0")
        vp, lp = (one(out, method=m, arm="ticket", shots="1", contrast=f"L{k}-L0").estimate for m in ("vp", "lp"))
        assert row.estimate == pytest.approx(vp - lp, abs=1e-12)
    for method, contrast in (("vp", "slope"), ("vp-lp", "vp-lp_slope")):
        text = one(out, method=method, arm="ticket", shots="5", contrast=contrast).per_level
        parts = text.split(", ")
        assert [p.split()[0] for p in parts] == [f"L{k}" for k in range(1, 9)]
        l8 = one(out, method=method, arm="ticket", shots="5", contrast="L8-L0").estimate
        assert float(parts[-1].split()[1]) == pytest.approx(l8, rel=1e-2)
    assert (out.loc[~out["contrast"].isin(["slope", "vp-lp_slope"]), "per_level"] == "").all()


def test_a_slope_carried_by_the_dense_level_is_flagged():
    """Dense level 10 points above flat sparse levels: the slope is 'detected', the L0 step test
    rejects, the sparse levels alone show no slope, and the row says driven_by_L0. A straight line
    of the same steepness is not flagged."""
    step = make_table(families=6, seeds=5, shots=("5",), methods=("vp",), arms=("ticket",), slope={}, noise=0.005,
                      seed=11)
    step.loc[step["level"] == 0, "accuracy"] += 0.10
    row = one(effects(step), contrast="slope")
    assert row.p_adj < 0.05 and row.estimate < 0
    assert row.shape_p < 0.05 and row.p_wo_L0 >= 0.05 and abs(row.slope_wo_L0) < 0.003
    assert bool(row.driven_by_L0) and "driven by the dense level" in verdict(row)
    line = make_table(families=6, seeds=5, shots=("5",), methods=("vp",), arms=("ticket",), noise=0.005, seed=11)
    row = one(effects(line), contrast="slope")
    assert row.p_adj < 0.05 and row.shape_p > 0.05 and not row.driven_by_L0
    assert row.slope_wo_L0 == pytest.approx(TRUE_SLOPE["vp"], abs=0.003)


def test_planned_replicates_only_and_the_report_says_what_was_left_out():
    """A learning-rate variant and a duplicated run are never pooled into the planned analysis;
    the report names them and the cell they leave incomplete; all_runs=True uses everything."""
    base = make_table(families=3, seeds=3, shots=("1",), methods=("vp", "lp"), arms=("ticket",), noise=0.01, seed=4)
    base["lr"] = 0.1
    variant = base[(base["method"] == "vp") & (base["level"] == 8) & (base["family"] == 0) & (base["seed"] == 0)]
    variant = variant.assign(lr=1.0, accuracy=0.0)  # a grid run of another protocol
    dup = base[(base["method"] == "lp") & (base["level"] == 4) & (base["family"] == 1) & (base["seed"] == 2)]
    dup = dup.assign(accuracy=dup["accuracy"] + 0.3)  # same protocol, another run of the same replicate
    table = pd.concat([base, variant, dup], ignore_index=True)

    report = E.replication_report(table)
    issues = dict(zip(report["issue"], report["detail"]))
    assert set(issues) == {"other protocol, left out", "several runs of one replicate, left out", "missing replicates"}
    assert issues["other protocol, left out"] == "lr=1.0 (main: 0.1)"
    assert issues["several runs of one replicate, left out"] == "f1 s2"
    assert issues["missing replicates"] == "missing f1 s2"
    assert E.replication_report(base).empty

    planned, clean = effects(table), effects(base)
    vp8 = one(planned, method="vp", contrast="L8-L0")
    assert vp8.estimate == pytest.approx(one(clean, method="vp", contrast="L8-L0").estimate, rel=1e-12)
    lp_slope = one(planned, method="lp", contrast="slope")  # (f1, s2) lacks L4: not a planned replicate of the slope
    assert (lp_slope.fit, bool(lp_slope.balanced)) == ("reml", False)
    assert one(clean, method="lp", contrast="slope").fit == "anova"

    every = effects(table, all_runs=True)
    original = base.loc[variant.index[0], "accuracy"]  # the planned run the variant copies
    want = vp8.estimate + (0.0 - original) / 2 / 9  # the cell now averages 0 and the planned run; 9 replicates
    assert one(every, method="vp", contrast="L8-L0").estimate == pytest.approx(want, rel=1e-9)
    assert one(every, method="lp", contrast="slope").fit == "anova"  # the duplicates averaged: a complete grid again
    pooled = E.prepare(table, all_runs=True)
    cell = pooled[(pooled["method"] == "lp") & (pooled["level"] == 4) & (pooled["family"] == "1") & (pooled["seed"] == 2)]
    assert len(cell) == 1 and cell["accuracy"].iloc[0] == pytest.approx(base.loc[dup.index[0], "accuracy"] + 0.15)


def test_shipped_v2_bundle_crossed_interval_for_the_1_shot_vp_lp_slope(capsys):
    """The shipped v2 bundle (3 families x 5 seeds): the crossed model widens the 1-shot VP - LP
    slope interval from the family means' [+3.26, +3.60] points to about [+1.4, +5.5]; every row
    carries its MDE."""
    from helpers import SHIPPED
    from lthvp.commands.cli import main

    assert main(["effects", "--bundle", str(SHIPPED), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all("mde" in r for r in rows) and all(r["mde"] is not None for r in rows if r["p"] is not None)
    row = one(pd.DataFrame(rows), method="vp-lp", shots="1", contrast="vp-lp_slope")
    assert (row.ci_low, row.ci_high) == pytest.approx((0.0135, 0.0551), abs=0.001)
    assert (row.ci_low_fm, row.ci_high_fm) == pytest.approx((0.0326, 0.0360), abs=0.0002)
    assert 0.002 < row.p < 0.01 and row.p_fm < 0.001
    assert (row.unit, row.n_families, row.n_seeds, bool(row.balanced)) == ("family x seed", 3, 5, True)
    assert row.mde > row.ci_high - row.estimate  # 80% power at the Bonferroni level needs more than the 95% half-width


def test_effects_page_shows_mde_and_per_level_estimates_beside_slopes(tmp_path, monkeypatch):
    """The Effects page over the shipped bundle: not-detected verdicts say what could have been
    detected, and the slopes table carries the MDE and the L{k}-L0 estimates, equal to effects()."""
    from streamlit import cache_data, cache_resource
    from streamlit.testing.v1 import AppTest

    from helpers import REPO, SHIPPED
    from lthvp.results.store import ResultStore

    store = ResultStore(tmp_path / "store")
    store.import_bundle(SHIPPED)
    monkeypatch.setenv("LTHVP_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("LTHVP_AUTOSTART_WORKER", "0")
    cache_data.clear()
    cache_resource.clear()
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
        at.switch_page("pages/effects.py")
        at = at.run()
        assert not at.exception, [e.message for e in at.exception]
        said = "\n".join(t.value for t in at.text)
        assert "could have detected >= " in said and "(80% power)" in said
        assert any("crossed random factors" in c.value for c in at.caption)
        slopes = next(d.value for d in at.dataframe if "L8 - L0 (pts)" in d.value.columns)
        assert {"slope (pts)", "95% CI (pts)", "corrected p", "MDE (pts)", "L2 - L0 (pts)", "L0 step p",
                "carried by L0"} <= set(slopes.columns)  # differences in points, named with their unit
        want = effects(store.table(), "accuracy", "digits")
        row = one(want, method="vp-lp", shots="1", contrast="vp-lp_slope")
        shown = slopes[(slopes["question"] == "VP - LP") & (slopes["shots"] == "1-shot")].iloc[0]
        assert shown["MDE (pts)"] == pytest.approx(100 * row.mde) and shown["slope (pts)"] == pytest.approx(100 * row.estimate)
        l8 = one(want, method="vp-lp", arm="ticket", shots="1", contrast="L8-L0").estimate
        assert shown["L8 - L0 (pts)"] == pytest.approx(100 * l8)
    finally:
        cache_data.clear()
        cache_resource.clear()


def test_the_headline_states_the_answer_in_one_sentence():
    import pandas as pd

    from lthvp.analysis.verdicts import headline

    def row(shots, est, p_adj, lo, hi):
        return {"metric": "accuracy", "method": "vp-lp", "arm": "ticket", "contrast": "vp-lp_slope", "shots": shots,
                "estimate": est, "p_adj": p_adj, "ci_low_adj": lo, "ci_high_adj": hi}

    table = pd.DataFrame([row("1", 0.034, 0.02, 0.006, 0.063), row("5", -0.05, 0.01, -0.09, -0.01),
                          row("full", 0.035, 0.5, -0.076, 0.145)])
    text = headline(table)
    assert text.startswith("Does sparsity cost visual prompting more than linear probing? Detected at 5 shots; "
                           "detected against the claim (LP loses more) at 1 shot;")
    assert text.endswith("on full data VP's accuracy changes by +3.5 points per halving of the weights relative to "
                         "LP's (simultaneous 95% interval -7.6 to +14.5).")
    none = headline(table.assign(p_adj=0.5))
    assert "Not detected at any shot count" in none and headline(table.iloc[0:0]) is None
