"""Temperature scaling (lthvp.results.calibration) and the stored per-sample probabilities
(lthvp.results.predictions): recovery of a known temperature, no test-split leakage, and strict decoding."""

import base64

import numpy as np
import pytest
import torch

from lthvp.results.calibration import apply_temperature, fit_temperature, temperature_scaled_metrics, validation_nll
from lthvp.results.metrics import accuracy, expected_calibration_error
from lthvp.results.predictions import MAX_PREDICTION_VALUES, PredictionError, decode_probs, encode_probs


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def calibrated_sample(n=3000, k=5, seed=0, scale=1.5):
    """Logits z and labels drawn from softmax(z): temperature 1 is calibrated for (z, y)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, scale, (n, k))
    p = softmax(z)
    y = (rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1)
    return z, np.minimum(y, k - 1)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("true_t", [3.0, 0.5])
def test_fit_temperature_recovers_known_temperature(seed, true_t):
    """Probabilities softmax(z * T) for labels drawn from softmax(z): the fit must return ~T
    (overconfident T=3 and underconfident T=0.5), and it must lower the validation NLL."""
    z, y = calibrated_sample(seed=seed)
    probs = softmax(z * true_t)
    t = fit_temperature(probs, y)
    assert t == pytest.approx(true_t, rel=0.15)
    before, after = validation_nll(probs, y), validation_nll(probs, y, t)
    assert after < before - 0.01
    # the fitted T is a minimum: nudging it either way does not lower the NLL
    assert after <= validation_nll(probs, y, t * 1.05) and after <= validation_nll(probs, y, t / 1.05)


def test_fit_temperature_accepts_tensors():
    """Torch tensors (as the runner passes them) give the same T as numpy arrays."""
    z, y = calibrated_sample(n=500, seed=3)
    probs = softmax(z * 2.0)
    assert fit_temperature(torch.tensor(probs), torch.tensor(y)) == pytest.approx(fit_temperature(probs, y), rel=1e-9)


def test_apply_temperature_is_softmax_of_scaled_log_probs():
    """apply_temperature(p, T) = softmax(log p / T): undoes a known scaling and keeps argmax."""
    z, _ = calibrated_sample(n=200, seed=4)
    scaled = apply_temperature(softmax(z * 3.0), 3.0)
    np.testing.assert_allclose(scaled, softmax(z), atol=1e-9)
    np.testing.assert_array_equal(scaled.argmax(1), z.argmax(1))
    np.testing.assert_allclose(apply_temperature(softmax(z), 1.0), softmax(z), atol=1e-12)


def test_temperature_scaled_metrics_never_fit_on_test():
    """The temperature depends only on the validation split: replacing the test split by arbitrary
    (even oppositely miscalibrated) data leaves T bit-identical; test metrics are of the scaled probs."""
    zv, yv = calibrated_sample(n=2000, seed=5)
    val_probs = softmax(zv * 3.0)
    zt, yt = calibrated_sample(n=1000, seed=6)
    test_a = softmax(zt * 3.0)
    rng = np.random.default_rng(8)
    test_b = softmax(rng.normal(0, 0.3, (700, 5)))  # underconfident, different size
    yb = rng.integers(0, 5, 700)
    ra = temperature_scaled_metrics(val_probs, yv, test_a, yt)
    rb = temperature_scaled_metrics(val_probs, yv, test_b, yb)
    assert ra["temperature"] == rb["temperature"]
    assert ra["temperature"] == fit_temperature(val_probs, yv)
    t = ra["temperature"]
    assert ra["ece"] == pytest.approx(expected_calibration_error(apply_temperature(test_a, t), yt), abs=1e-12)
    assert ra["ece"] < expected_calibration_error(test_a, yt) - 0.05  # scaling fixed the overconfidence
    assert rb["ece"] == pytest.approx(expected_calibration_error(apply_temperature(test_b, t), yb), abs=1e-12)
    assert ra["accuracy"] == accuracy(test_a, yt) and rb["accuracy"] == accuracy(test_b, yb)
    assert ra["val_nll_after"] < ra["val_nll_before"]
    assert ra["val_nll_before"] == pytest.approx(validation_nll(val_probs, yv))


# ---- encode / decode ---------------------------------------------------------------------

def test_encode_decode_round_trip():
    """float16 storage loses < 1e-3 per value; decoded rows are renormalised to sum to 1."""
    z, _ = calibrated_sample(n=300, k=10, seed=9, scale=2.0)
    probs = softmax(z)
    obj = encode_probs(probs)
    assert obj["dtype"] == "float16" and obj["shape"] == [300, 10]
    assert len(base64.b64decode(obj["data"])) == 2 * 300 * 10
    out = decode_probs(obj)
    assert out.dtype == np.float64 and out.shape == (300, 10)
    np.testing.assert_allclose(out, probs, atol=1e-3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(decode_probs(encode_probs(torch.tensor(probs))), out)


def test_encode_rejects_non_matrix():
    """Only (N, K) arrays are stored."""
    with pytest.raises(ValueError, match="must be \\(N, K\\)"):
        encode_probs(np.array([0.5, 0.5]))


def _good():
    return encode_probs(np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]]))


def _with(**kw):
    return {**_good(), **kw}


def _b64(arr):
    return base64.b64encode(np.asarray(arr, dtype=np.float16).tobytes()).decode()


MALFORMED = {
    "not a dict": [[0.5, 0.5]],
    "wrong dtype tag": _with(dtype="float32"),
    "missing data": {"dtype": "float16", "shape": [3, 2]},
    "data not text": _with(data=b"AAAA"),
    "bad base64": _with(data="!!not*base64!!"),
    "too few bytes": _with(data=_b64([0.25, 0.75, 0.5, 0.5, 1.0])),
    "too many bytes": _with(data=_b64([0.25, 0.75, 0.5, 0.5, 1.0, 0.0, 0.5])),
    "negative shape": _with(shape=[-3, -2]),
    "zero shape": _with(shape=[0, 2]),
    "bool shape": _with(shape=[True, 6]),
    "float shape": _with(shape=[3.0, 2]),
    "three dims": _with(shape=[3, 2, 1]),
    "shape not list": _with(shape="3,2"),
    "too large": _with(shape=[MAX_PREDICTION_VALUES + 1, 1]),
    "nan value": _with(data=_b64([0.25, 0.75, np.nan, 0.5, 1.0, 0.0])),
    "inf value": _with(data=_b64([0.25, 0.75, np.inf, 0.5, 1.0, 0.0])),
    "negative value": _with(data=_b64([1.25, -0.25, 0.5, 0.5, 1.0, 0.0])),
    "row sum 0.7": _with(data=_b64([0.25, 0.45, 0.5, 0.5, 1.0, 0.0])),
    "row sum 2": _with(data=_b64([1.0, 1.0, 0.5, 0.5, 1.0, 0.0])),
}


def test_good_fixture_decodes():
    """The base object the malformed cases are derived from is itself valid."""
    np.testing.assert_allclose(decode_probs(_good()), [[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_decode_rejects_malformed(case):
    """Every malformed stored array raises PredictionError (never returns, never another error)."""
    with pytest.raises(PredictionError):
        decode_probs(MALFORMED[case])
