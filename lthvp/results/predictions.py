"""Per-sample probabilities stored compactly in a record (float16, base64), so any metric can
be recomputed later without retraining. Decoding validates shape, size and values."""

from __future__ import annotations

import base64

import numpy as np

MAX_PREDICTION_VALUES = 4_000_000  # 8 MB of float16 per array: far above any target test split here


class PredictionError(ValueError):
    """A stored prediction array is malformed."""


def encode_probs(probs) -> dict:
    arr = np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs, dtype=np.float16)
    if arr.ndim != 2:
        raise ValueError(f"probabilities must be (N, K), got shape {arr.shape}")
    return {"dtype": "float16", "shape": list(arr.shape), "data": base64.b64encode(arr.tobytes()).decode()}


def stored_probs(obj) -> np.ndarray:
    """The (N, K) float16 values exactly as stored (no renormalising): what a bundle writes out."""
    decode_probs(obj)  # the same checks as every reader
    return np.frombuffer(base64.b64decode(obj["data"]), dtype=np.float16).reshape(obj["shape"])


def decode_probs(obj) -> np.ndarray:
    """(N, K) float64 probabilities, renormalised per row (float16 rounding moves sums by <1e-3)."""
    if not isinstance(obj, dict) or obj.get("dtype") != "float16" or not isinstance(obj.get("data"), str):
        raise PredictionError("predictions must be {'dtype': 'float16', 'shape': [N, K], 'data': base64}")
    shape = obj.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                                    and v > 0 for v in shape)):
        raise PredictionError(f"prediction shape must be two positive integers, got {shape!r}")
    if shape[0] * shape[1] > MAX_PREDICTION_VALUES:
        raise PredictionError(f"prediction array too large ({shape[0]}x{shape[1]})")
    try:
        raw = base64.b64decode(obj["data"], validate=True)
    except ValueError:
        raise PredictionError("prediction data is not base64") from None
    if len(raw) != 2 * shape[0] * shape[1]:
        raise PredictionError(f"prediction data holds {len(raw)} bytes, shape {shape} needs {2 * shape[0] * shape[1]}")
    arr = np.frombuffer(raw, dtype=np.float16).reshape(shape).astype(np.float64)
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1.001:
        raise PredictionError("prediction values must be probabilities in [0, 1]")
    sums = arr.sum(axis=1, keepdims=True)
    if np.any(np.abs(sums - 1) > 0.02):
        raise PredictionError("prediction rows must sum to 1")
    return arr / sums
