"""Typed results: what an adapter (VP, mapping-only, LP) hands back, and the stored record.

``AdaptOutcome`` is the one outcome type of every adapter; ``RunRecord`` is the stored document
with its fields named once, here. ``to_json`` gives the plain-JSON dict the store, bundles and
the Dask workers exchange; ``from_json`` validates such a dict with :mod:`lthvp.results.record_schema`
(types, ranges, sizes) before it becomes a record, so a RunRecord is always a valid one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from lthvp.results.record_schema import FIELDS, validate_record


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


@dataclass(frozen=True)
class RunRecord:
    """One stored result; field meanings in docs/RELIABILITY.md (the record schema)."""

    hash: str
    config: dict
    metrics: dict
    reliability: dict
    remaining_fraction: float
    scaled: dict | None = None
    predictions: dict | None = None
    n_test: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    per_class_accuracy: list | None = None
    classes: list | None = None
    sparsity: dict | None = None
    ticket: str | None = None
    best_epoch: int | None = None
    curves: list | None = None
    mapping: list | None = None
    mapping_history: list | None = None
    prompt_png: str | None = None
    prompt_shift: float | None = None
    steps: int | None = None
    timings: dict | None = None
    provenance: dict | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, name: str | None = None) -> "RunRecord":
        clean = validate_record(data, name)
        return cls(**{k: clean.get(k) for k in FIELDS})

