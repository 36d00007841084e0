"""Post-hoc calibration: temperature scaling (Guo et al. 2017; gpleiss/temperature_scaling),
one scalar per run fitted by LBFGS on the validation NLL. The test split is only scored."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lthvp.results.metrics import evaluate

EPS = 1e-12


def _log_probs(probs) -> torch.Tensor:
    """Log-probabilities act as logits: softmax(log p / T) = softmax(z / T) for any logits z of p."""
    p = torch.as_tensor(np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs), dtype=torch.float64)
    return torch.log(p.clamp_min(EPS))


def fit_temperature(val_probs, val_labels, max_iter: int = 100) -> float:
    """The T > 0 minimising validation NLL of softmax(log p / T), optimised over log T."""
    z = _log_probs(val_probs)
    y = torch.as_tensor(np.asarray(val_labels), dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return t if np.isfinite(t) else 1.0


def apply_temperature(probs, temperature: float) -> np.ndarray:
    return F.softmax(_log_probs(probs) / temperature, dim=1).numpy()


def validation_nll(probs, labels, temperature: float = 1.0) -> float:
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return float(F.cross_entropy(_log_probs(probs) / temperature, y))


def temperature_scaled_metrics(val_probs, val_labels, test_probs, test_labels) -> dict:
    """Fit T on validation, then the test metrics of the scaled probabilities (accuracy is
    unchanged by construction: T > 0 keeps every argmax)."""
    t = fit_temperature(val_probs, val_labels)
    m = evaluate(apply_temperature(test_probs, t), np.asarray(test_labels))
    return {"temperature": t, **{k: m[k] for k in ("accuracy", "ece", "mce", "nll", "brier")},
            "val_nll_before": validation_nll(val_probs, val_labels), "val_nll_after": validation_nll(val_probs, val_labels, t)}
