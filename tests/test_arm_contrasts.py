"""The compression-arm contrasts (lthvp.analysis.arm_contrasts) on synthetic tables with planted
answers: IMP minus each pruning arm at equal level, each quantized arm minus the same level in
float (dense at level 0); their findings claims; the CLI's JSON."""

import json

import numpy as np
import pandas as pd
import pytest

from lthvp.analysis import arm_contrasts as A
from lthvp.analysis.effects import effects

# accuracy cost of each arm against IMP at the same level (planted); quantization costs no accuracy
ARM_COST = {"ticket": 0.0, "oneshot": 0.03, "oneshot_noft": -0.02, "structured": 0.06, "quant8": 0.0, "quant4": 0.0}
QUANT4_ECE = 0.02  # int4 worsens raw ECE by 2 points; temperature scaling repairs it (ts_ece: 0)


def arm_table(families=5, seeds=4, shots=("1", "full"), methods=("vp", "lp"), levels=range(5), noise=0.005, seed=0):
    """One row per run: accuracy = 0.7 - 0.01 * level - ARM_COST + noise; ece = 0.05 (+ QUANT4_ECE for
    quant4) + noise; ts_ece = 0.03 + noise. Pruning arms start at level 1 (level 0 is dense)."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in methods:
        for sh in shots:
            for f in range(families):
                for s in range(seeds):
                    for arm, cost in ARM_COST.items():
                        for lv in levels:
                            if lv == 0 and arm in ("oneshot", "oneshot_noft", "structured"):
                                continue
                            rows.append(dict(dataset="d", method=m, arm=arm, shots=sh, level=lv, seed=s, family=f,
                                             remaining_fraction=0.8 ** lv,
                                             accuracy=0.7 - 0.01 * lv - cost + rng.normal(0, noise),
                                             ece=0.05 + (QUANT4_ECE if arm == "quant4" else 0) + rng.normal(0, noise),
                                             ts_ece=0.03 + rng.normal(0, noise)))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table():
    return arm_table()


@pytest.fixture(scope="module")
def acc(table):
    return effects(table, "accuracy", "d")


def one(out, **match):
    rows = out
    for k, v in match.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, (match, len(rows))
    return rows.iloc[0]


def hand_mean(table, metric, method, shots, level, a, b):
    """mean over (family, seed) of arm a minus arm b, written with plain dict lookups."""
    v = {(r.arm, r.family, r.seed): getattr(r, metric) for r in table.itertuples()
         if (r.method, r.shots, r.level) == (method, shots, level)}
    d = [v[(a, f, s)] - v[(b, f, s)] for (arm, f, s) in v if arm == a and (b, f, s) in v]
    return float(np.mean(d)), len(d)


def test_a_planted_imp_minus_pruning_difference_is_recovered_with_its_sign(table, acc):
    for arm in ("oneshot", "oneshot_noft", "structured"):
        for method in ("vp", "lp"):
            for shots in ("1", "full"):
                for level in (1, 4):
                    r = one(acc, method=method, shots=shots, contrast=f"imp-{arm}_L{level}")
                    mean, n = hand_mean(table, "accuracy", method, shots, level, "ticket", arm)
                    assert r["arm"] == f"imp-{arm}" and r["n_runs"] == 2 * n == 40
                    assert r["estimate"] == pytest.approx(mean, abs=1e-12)  # balanced grid: the mean difference
                    assert r["estimate"] == pytest.approx(ARM_COST[arm], abs=0.0065)  # 4 standard errors
                    assert r["p_adj"] < 0.05 and np.sign(r["estimate"]) == np.sign(ARM_COST[arm])
                    assert r["ci_low_adj"] * r["ci_high_adj"] > 0  # the simultaneous interval misses 0
                    assert r["test_family"] == f"accuracy|{method}|imp-{arm}|imp-{arm}_L{level}"
                    assert (r["n_families"], r["n_seeds"], r["unit"]) == (5, 4, "family x seed")
    assert not acc["contrast"].isin(["imp-oneshot_L0", "imp-structured_noft_L1"]).any()  # nothing unpaired


def test_quantization_with_no_planted_difference_is_not_detected_and_pairs_with_its_own_level(table, acc):
    quant = acc[acc["arm"].isin(["quant8-float", "quant4-float"])]
    assert set(quant["contrast"]) == {f"quant{b}-L{k}" for b in (8, 4) for k in range(5)}
    assert (quant["p_adj"] >= 0.05).all(), quant[quant["p_adj"] < 0.05][["contrast", "shots", "p_adj"]]
    r = one(acc, method="vp", shots="1", contrast="quant8-L0")  # level 0: minus the dense model
    mean, n = hand_mean(table, "accuracy", "vp", "1", 0, "quant8", "ticket")
    assert r["estimate"] == pytest.approx(mean, abs=1e-12) and n == 20
    r = one(acc, method="lp", shots="full", contrast="quant4-L3")  # level 3: minus IMP level 3, not dense
    assert r["estimate"] == pytest.approx(hand_mean(table, "accuracy", "lp", "full", 3, "quant4", "ticket")[0],
                                          abs=1e-12)
    assert abs(r["estimate"]) < 0.01  # IMP level 3 is 3 points below dense; the contrast does not see it


def test_quantization_calibration_raw_and_temperature_scaled(table):
    ece, ts = effects(table, "ece", "d"), effects(table, "ts_ece", "d")
    for method in ("vp", "lp"):
        for shots in ("1", "full"):
            raw = one(ece, method=method, shots=shots, contrast="quant4-L0")
            assert raw["p_adj"] < 0.05 and raw["estimate"] == pytest.approx(QUANT4_ECE, abs=0.005)
            assert one(ece, method=method, shots=shots, contrast="quant8-L0")["p_adj"] >= 0.05
            assert one(ts, method=method, shots=shots, contrast="quant4-L0")["p_adj"] >= 0.05


def test_contrast_names_their_level_and_claims_are_asked_at_every_level_the_arm_ran(acc):
    assert A.contrast_level("imp-oneshot_noft_L4") == 4 and A.contrast_level("quant8-L0") == 0
    assert A.contrast_level("imp-random_L12") == 12 and A.contrast_level("L4-L0") is None
    assert A.claim_levels(acc, "vp", "imp-oneshot_L{level}") == [1, 2, 3, 4]  # not L0: it is dense
    assert A.claim_levels(acc, "lp", "quant4-L{level}") == [0, 1, 2, 3, 4]
    assert A.claim_levels(acc, "vp", "imp-random_L{level}") == []  # no such arm: no claim
    assert A.claim_levels(acc.iloc[0:0], "vp", "quant4-L{level}") == []


def test_quant_bits_are_the_builders():
    from lthvp.tickets.arms import QUANT_BITS

    assert A.QUANT_BITS == QUANT_BITS


def claim_lines(text, start):
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f"| {start}"))
    out = [lines[i]]
    for line in lines[i + 1:]:
        if not line.startswith("|  |"):
            break
        out.append(line)
    return out


def test_findings_state_the_pre_registered_arm_claims_only_when_the_records_hold_the_arms(table):
    """docs/STUDY.md claims 6 and 7: IMP - oneshot at every level (predicted >= 0), quantized - float
    ECE before and after temperature scaling at every level (predicted 0, two-sided)."""
    from lthvp.analysis.findings import ARM_CLAIMS, claim_verdict, findings_markdown

    text = findings_markdown(table, "d")
    imp = "IMP tickets transfer no worse than one-shot magnitude pruning at equal sparsity"
    for name in ("VP", "LP"):
        for level in (1, 2, 3, 4):
            block = claim_lines(text, f"{imp} ({name}, L{level})")
            assert len(block) == 2 and all("**detected**" in line for line in block)  # IMP better by 3 points
            assert f"level {level}'s remaining weights" in block[0]
        assert f"{imp} ({name}, L0)" not in text  # the one-shot arm has no dense level
    quant = "Quantization does not worsen calibration"
    for level in range(5):
        raw = claim_lines(text, f"{quant} (VP ECE, int4, L{level})")
        assert len(raw) == 2 and all("**detected, against the claim**" in line for line in raw)  # +2 points ECE
        assert float(raw[0].split("|")[3].split()[0]) == pytest.approx(100 * QUANT4_ECE, abs=0.5)
        for other in (f"(LP ECE after temperature scaling, int4, L{level})", f"(VP ECE, int8, L{level})"):
            assert all("| not detected |" in line for line in claim_lines(text, f"{quant} {other}"))
    assert claim_verdict(0.001, -0.03, None) == "**detected, against the claim**"  # predicted 0: either sign
    assert claim_verdict(0.2, -0.03, None) == "not detected"
    # without the arms: no line at all (neither a claim nor an "unavailable" note)
    plain = findings_markdown(table[table["arm"] == "ticket"], "d")
    assert not any(title.split(" (")[0] in plain for title, *_ in ARM_CLAIMS)
    assert plain.count("unavailable") == text.count("unavailable")


def test_cli_effects_json_lists_the_arm_contrasts(tmp_path, capsys):
    """`python -m lthvp effects --json` over a store of synthetic records of the oneshot and quant8 arms."""
    from helpers import make_record
    from lthvp.commands.cli import main
    from lthvp.results.store import ResultStore

    store = ResultStore(tmp_path / "store")
    rng = np.random.default_rng(1)
    for family in (0, 1):
        for seed in (0, 1, 2):
            for arm, levels in (("ticket", (0, 2)), ("oneshot", (2,)), ("quant8", (0, 2))):
                for level in levels:
                    rec = make_record(seed, method="lp", level=level, family=family, arm=arm, shots="full")
                    m = {**rec["metrics"], "accuracy": float(0.6 + 0.1 * rng.random())}
                    scaled = {"temperature": 1.5, **m}
                    store.put({**rec, "metrics": m, "scaled": scaled})
    for metric in ("accuracy", "ece", "ts_ece"):
        assert main(["effects", "--store", str(store.directory), "--metric", metric, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        names = {(r["arm"], r["contrast"]) for r in rows}
        assert {("imp-oneshot", "imp-oneshot_L2"), ("quant8-float", "quant8-L0"), ("quant8-float", "quant8-L2")} <= names
        row = next(r for r in rows if r["contrast"] == "imp-oneshot_L2")
        assert row["n_families"] == 2 and row["n_seeds"] == 3 and row["n_runs"] == 12
