"""What every adapter (VP, mapping-only, LP) hands back to the runner: one outcome type."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AdaptOutcome:
    """A finished adaptation: class probabilities on validation and test (N, classes), the round
    chosen on validation, the per-round curves, and what only VP produces."""

    test_probs: torch.Tensor
    val_probs: torch.Tensor
    best_epoch: int | None
    curves: list[dict]
    timings: dict = field(default_factory=dict)  # seconds of named phases (e.g. feature extraction)
    mapping: list[int] | None = None  # VP: target class -> source class
    mapping_history: list[list[int]] | None = None  # VP: the mapping at every round
    prompt_png: str | None = None  # VP: the learned border, base64 PNG
    prompt_shift: float | None = None  # VP: mean |prompt - grey start| over the border, 0..0.5
    steps: int | None = None  # optimizer steps taken
