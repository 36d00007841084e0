"""Calibration and classification metrics against the contract (lthvp/results/metrics.py docstring) and
against torchmetrics' reference implementation away from bin edges."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lthvp.results.metrics import (accuracy, brier_score, ece_from_table, evaluate, expected_calibration_error,
                           maximum_calibration_error, negative_log_likelihood, per_class_accuracy,
                           reliability_table, table_from_json, table_to_json)

N_BINS = 15
EDGES = np.arange(N_BINS + 1) / N_BINS


def _row(conf: float, k: int = 15) -> np.ndarray:
    """A probability row of length k whose max (at index 0) is exactly ``conf``."""
    row = np.full(k, (1.0 - conf) / (k - 1))
    row[0] = conf
    assert row.argmax() == 0 and row.max() == conf
    return row


def _random_probs(n: int, k: int, seed: int, temperature: float = 1.5):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=gen, dtype=torch.float64) * temperature
    probs = torch.softmax(logits, dim=1)
    labels = torch.randint(0, k, (n,), generator=gen)
    # make the predictions better than chance so accuracy varies across bins
    flip = torch.rand(n, generator=gen) < 0.5
    labels = torch.where(flip, probs.argmax(1), labels)
    return probs, labels


def _away_from_edges(probs: torch.Tensor, tol: float = 1e-4) -> torch.Tensor:
    conf = probs.max(1).values.numpy()
    dist = np.abs(conf[:, None] - EDGES[None, :]).min(1)
    return torch.from_numpy(dist > tol)


@pytest.mark.parametrize("seed,k", [(0, 10), (1, 3), (2, 20), (3, 2)])
def test_ece_matches_torchmetrics_away_from_bin_edges(seed, k):
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = _random_probs(3000, k, seed, temperature=0.5 + seed)
    keep = _away_from_edges(probs)
    probs, labels = probs[keep], labels[keep]
    assert len(labels) > 2500
    ours = expected_calibration_error(probs, labels)
    ref = float(multiclass_calibration_error(probs.float(), labels, num_classes=k, n_bins=N_BINS, norm="l1"))
    assert ours > 0.005  # a non-trivial value, not a vacuous 0 == 0
    assert ours == pytest.approx(ref, abs=2e-5)


def test_ece_on_bin_edges_uses_lower_bin():
    # confidence exactly 1/15 -> bin 0 ((0, 1/15]); exactly 2/15 -> bin 1; exactly 1.0 -> last bin
    probs = np.stack([np.full(15, 1.0 / 15), _row(2 / 15), _row(1.0)])
    assert probs[0].max() == 1 / 15
    labels = np.array([0, 1, 0])  # correct, wrong, correct
    table = reliability_table(probs, labels)
    counts = table["count"].to_numpy()
    assert counts[0] == 1 and counts[1] == 1 and counts[14] == 1 and counts.sum() == 3
    assert table.loc[0, "accuracy"] == 1.0 and table.loc[0, "confidence"] == pytest.approx(1 / 15)
    assert table.loc[1, "accuracy"] == 0.0 and table.loc[1, "confidence"] == pytest.approx(2 / 15)
    # bins: |1 - 1/15| + |0 - 2/15| + |1 - 1| over N = 3
    expected = (14 / 15 + 2 / 15 + 0.0) / 3
    assert expected_calibration_error(probs, labels) == pytest.approx(expected, abs=1e-12)
    # with [lower, upper) binning (torchmetrics) 1/15 and 2/15 would share bin 1: ECE 0.2667, not 0.3556
    assert expected != pytest.approx(0.4 * 2 / 3, abs=1e-3)
    assert maximum_calibration_error(probs, labels) == pytest.approx(14 / 15)


@pytest.mark.parametrize("k", range(1, 16))
def test_every_edge_goes_to_the_bin_below(k):
    conf = k / 15
    row = np.full(15, 1 / 15) if k == 1 else _row(conf)
    table = reliability_table(row[None, :], np.array([0]))
    assert int(table["count"].to_numpy().argmax()) == k - 1
    assert table["count"].sum() == 1


def test_confidence_zero_goes_to_first_bin():
    probs = np.zeros((1, 4))
    table = reliability_table(probs, np.array([2]))
    assert table.loc[0, "count"] == 1 and table["count"].sum() == 1
    # argmax of an all-zero row is class 0, label 2 -> wrong; |0 - 0| = 0
    assert expected_calibration_error(probs, np.array([2])) == 0.0
    assert expected_calibration_error(probs, np.array([0])) == pytest.approx(1.0)


def test_just_above_edge_goes_to_upper_bin():
    conf = np.nextafter(2 / 15, 1.0)
    table = reliability_table(_row(conf)[None, :], np.array([0]))
    assert int(table["count"].to_numpy().argmax()) == 2


def test_ece_recomputed_from_table_matches():
    probs, labels = _random_probs(1000, 10, seed=7)
    table = reliability_table(probs, labels)
    filled = table[table["count"] > 0]
    n = table["count"].sum()
    manual = sum(row.count / n * abs(row.accuracy - row.confidence) for row in filled.itertuples())
    assert n == 1000
    assert expected_calibration_error(probs, labels) == pytest.approx(manual, abs=1e-12)
    assert ece_from_table(table) == pytest.approx(manual, abs=1e-12)
    # also a direct, independent computation of the contract
    conf = probs.max(1).values.numpy()
    correct = (probs.argmax(1) == labels).numpy().astype(float)
    direct = 0.0
    for b in range(N_BINS):
        lo, hi = EDGES[b], EDGES[b + 1]
        member = (conf > lo) & (conf <= hi) if b else (conf >= 0) & (conf <= hi)
        if member.any():
            direct += member.sum() / len(conf) * abs(correct[member].mean() - conf[member].mean())
    assert manual == pytest.approx(direct, abs=1e-12)


def test_reliability_table_layout_and_empty_bins():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.55, 0.45]])
    labels = np.array([0, 1, 0])
    table = reliability_table(probs, labels)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["bin_lower", "bin_upper", "count", "accuracy", "confidence"]
    assert len(table) == N_BINS
    np.testing.assert_allclose(table["bin_lower"], EDGES[:-1])
    np.testing.assert_allclose(table["bin_upper"], EDGES[1:])
    empty = table["count"] == 0
    # 0.55 -> bin 8; 0.9 is in (13/15, 14/15] = (0.8667, 0.9333]; 0.95 in (14/15, 1]
    assert empty.sum() == N_BINS - 3
    assert table.loc[8, "count"] == 1 and table.loc[13, "count"] == 1 and table.loc[14, "count"] == 1
    assert table.loc[empty, "accuracy"].isna().all() and table.loc[empty, "confidence"].isna().all()
    assert table.loc[~empty, "accuracy"].notna().all() and table.loc[~empty, "confidence"].notna().all()
    assert table.loc[13, "accuracy"] == 0.0 and table.loc[13, "confidence"] == pytest.approx(0.9)
    assert expected_calibration_error(probs, labels) == pytest.approx((0.45 + 0.9 + 0.05) / 3)
    assert reliability_table(probs, labels, n_bins=10).shape[0] == 10


def test_table_json_roundtrip_keeps_nan():
    probs, labels = _random_probs(50, 4, seed=3)
    table = reliability_table(probs, labels)
    data = table_to_json(table)
    assert any(v is None for v in data["accuracy"])
    back = table_from_json(data)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert ece_from_table(back) == pytest.approx(expected_calibration_error(probs, labels))


def test_mce_nll_brier_accuracy_hand_cases():
    probs = np.array([[0.5, 0.5], [0.25, 0.75]])
    labels = np.array([0, 1])
    assert negative_log_likelihood(probs, labels) == pytest.approx(-(math.log(0.5) + math.log(0.75)) / 2)
    assert brier_score(probs, labels) == pytest.approx((0.25 + 0.25 + 0.0625 + 0.0625) / 2)
    assert accuracy(probs, labels) == 1.0  # ties -> class 0, which is the label
    # conf 0.5 -> bin 7 ((7/15, 8/15]); conf 0.75 -> bin 11 ((11/15, 12/15])
    table = reliability_table(probs, labels)
    assert table.loc[7, "count"] == 1 and table.loc[11, "count"] == 1
    assert maximum_calibration_error(probs, labels) == pytest.approx(0.5)
    assert expected_calibration_error(probs, labels) == pytest.approx((0.5 + 0.25) / 2)

    probs3 = np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels3 = np.array([1, 1, 2])
    assert accuracy(probs3, labels3) == pytest.approx(2 / 3)
    assert brier_score(probs3, labels3) == pytest.approx(
        ((0.04 + 0.09 + 0.01) + (0.36 + 0.49 + 0.01) + (0.01 + 0.01 + 0.04)) / 3)
    assert negative_log_likelihood(probs3, labels3) == pytest.approx(
        -(math.log(0.7) + math.log(0.3) + math.log(0.8)) / 3)
    assert per_class_accuracy(probs3, labels3) == [None, 0.5, 1.0]
    # perfectly confident and correct: everything zero
    onehot = np.eye(3)
    assert expected_calibration_error(onehot, np.arange(3)) == 0.0
    assert brier_score(onehot, np.arange(3)) == 0.0
    assert negative_log_likelihood(onehot, np.arange(3)) == pytest.approx(0.0, abs=1e-9)
    # confident and wrong: NLL is large but finite (clipped)
    assert math.isfinite(negative_log_likelihood(onehot, np.array([1, 2, 0])))
    assert brier_score(onehot, np.array([1, 2, 0])) == pytest.approx(2.0)


def test_torch_and_numpy_inputs_agree_and_evaluate_is_consistent():
    probs, labels = _random_probs(300, 5, seed=11)
    a = expected_calibration_error(probs, labels)
    b = expected_calibration_error(probs.numpy(), labels.numpy())
    assert a == b
    out = evaluate(probs.float(), labels)
    assert out["ece"] == pytest.approx(a, abs=1e-6)
    assert out["n"] == 300
    assert out["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).float().mean()))
    assert sum(c for c in out["reliability"]["count"]) == 300
    assert out["mce"] >= out["ece"]


@pytest.mark.parametrize("probs,labels", [
    (np.array([0.2, 0.8]), np.array([1])),                      # 1-D probs
    (np.ones((2, 3, 1)) / 3, np.array([0, 1])),                  # 3-D probs
    (np.full((3, 2), 0.5), np.array([0, 1])),                    # label count mismatch
    (np.full((2, 2), 0.5), np.array([[0], [1]])),                # 2-D labels
    (np.full((2, 2), 0.5), np.array([0, 2])),                    # label out of range
    (np.full((2, 2), 0.5), np.array([-1, 0])),                   # negative label
    (np.zeros((0, 3)), np.zeros((0,), dtype=int)),               # empty
    (np.array([[np.nan, 0.5]]), np.array([0])),                  # NaN
])
def test_bad_inputs_raise_value_error(probs, labels):
    with pytest.raises(ValueError):
        expected_calibration_error(probs, labels)
    with pytest.raises(ValueError):
        reliability_table(probs, labels)


def test_logits_instead_of_probs_raise_value_error():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 10, generator=gen) * 3
    labels = torch.randint(0, 10, (20,), generator=gen)
    for fn in (expected_calibration_error, negative_log_likelihood, brier_score, maximum_calibration_error):
        with pytest.raises(ValueError, match="softmax|probab"):
            fn(logits, labels)
    with pytest.raises(ValueError):
        expected_calibration_error(logits.abs() + 1.5, labels)  # positive logits > 1
