"""Classification and calibration metrics computed once over a whole evaluation set.

ECE contract: top-label, L1, ``n_bins`` equal-width bins on the max probability, bin
membership (lower, upper], confidence exactly 0 goes to the first bin, weights n_b / N,
empty bins skipped. The bin table and the ECE come from the same binning function so a
reliability diagram and its printed ECE always agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _as_numpy(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(probs, "detach"):
        probs = probs.detach().cpu().numpy()
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, K), got shape {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must be ({probs.shape[0]},), got shape {labels.shape}")
    if probs.shape[0] == 0:
        raise ValueError("need at least one sample")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in [0, {probs.shape[1] - 1}]")
    if np.any(probs < -1e-6) or np.any(probs > 1 + 1e-6) or not np.all(np.isfinite(probs)):
        raise ValueError("probs must be probabilities in [0, 1] (apply softmax to logits first)")
    return probs, labels


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin b holds confidences in (b/n, (b+1)/n]; confidence 0 goes to bin 0."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges[1:], confidence, side="left")
    return np.clip(idx, 0, n_bins - 1)


def reliability_table(probs, labels, n_bins: int = 15) -> pd.DataFrame:
    """One row per bin: bin_lower, bin_upper, count, accuracy, confidence (NaN where empty)."""
    probs, labels = _as_numpy(probs, labels)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = _bin_index(confidence, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=confidence, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": count.astype(np.int64),
            "accuracy": accuracy,
            "confidence": mean_conf,
        }
    )


def ece_from_table(table: pd.DataFrame) -> float:
    """ECE from a reliability table: sum over non-empty bins of n_b/N * |acc_b - conf_b|."""
    filled = table[table["count"] > 0]
    n = filled["count"].sum()
    return float((filled["count"] / n * (filled["accuracy"] - filled["confidence"]).abs()).sum())


def mce_from_table(table: pd.DataFrame) -> float:
    filled = table[table["count"] > 0]
    return float((filled["accuracy"] - filled["confidence"]).abs().max())


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    return ece_from_table(reliability_table(probs, labels, n_bins))


def maximum_calibration_error(probs, labels, n_bins: int = 15) -> float:
    return mce_from_table(reliability_table(probs, labels, n_bins))


def negative_log_likelihood(probs, labels, eps: float = 1e-12) -> float:
    probs, labels = _as_numpy(probs, labels)
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1.0)).mean())


def brier_score(probs, labels) -> float:
    """Multiclass Brier: mean over samples of sum_k (p_k - onehot_k)^2."""
    probs, labels = _as_numpy(probs, labels)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def accuracy(probs, labels) -> float:
    probs, labels = _as_numpy(probs, labels)
    return float((probs.argmax(axis=1) == labels).mean())


def per_class_accuracy(probs, labels) -> list[float | None]:
    """Accuracy of each true class (None where the class has no samples)."""
    probs, labels = _as_numpy(probs, labels)
    pred = probs.argmax(axis=1)
    out: list[float | None] = []
    for k in range(probs.shape[1]):
        members = labels == k
        out.append(float((pred[members] == k).mean()) if members.any() else None)
    return out


def table_to_json(table: pd.DataFrame) -> dict:
    """Column lists with NaN as None, so the table survives strict JSON."""
    return {c: [None if isinstance(v, float) and np.isnan(v) else v for v in table[c].tolist()]
            for c in table.columns}


def table_from_json(data: dict) -> pd.DataFrame:
    return pd.DataFrame(data).astype({"count": "int64", "accuracy": "float64", "confidence": "float64"})


def evaluate(probs, labels, n_bins: int = 15) -> dict:
    """All reported numbers for one evaluation set, plus the bin table they came from."""
    table = reliability_table(probs, labels, n_bins)
    return {
        "accuracy": accuracy(probs, labels),
        "ece": ece_from_table(table),
        "mce": mce_from_table(table),
        "nll": negative_log_likelihood(probs, labels),
        "brier": brier_score(probs, labels),
        "per_class_accuracy": per_class_accuracy(probs, labels),
        "reliability": table_to_json(table),
        "n": int(len(labels)),
    }
