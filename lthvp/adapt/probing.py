"""Linear probing: a new linear head on frozen penultimate features.

Features depend only on (ticket, dataset, split, transform), so they are extracted once and
cached as NPZ files; the head is then trained on the cached features. ``train_linear_head``
takes a feature function, so the same loop can also run through the backbone (used by tests
and the benchmark to check that caching changes nothing but speed).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lthvp.adapt.training import EpochSelector, reference_schedule, train_epoch
from lthvp.tickets.models import autocast_for


@torch.no_grad()
def extract_features(model: nn.Module, x: torch.Tensor, prepare: Callable[[torch.Tensor], torch.Tensor],
                     batch_size: int = 256) -> torch.Tensor:
    """Penultimate features of ``prepare(x[batch])`` with the model in eval mode."""
    model.eval()
    with autocast_for(next(model.parameters()).device):
        return torch.cat([model.features(prepare(x[i:i + batch_size])).float() for i in range(0, len(x), batch_size)])


class FeatureCache:
    """NPZ files keyed by a digest of (ticket id, dataset, split, transform)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, *key_parts: str) -> Path:
        digest = hashlib.sha256("|".join(key_parts).encode()).hexdigest()[:24]
        return self.directory / f"{digest}.npz"

    def get_or_compute(self, key_parts: tuple[str, ...], compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        path = self.path(*key_parts)
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as f:
                    return torch.from_numpy(f["features"])
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                path.unlink(missing_ok=True)  # a torn or corrupt file: recompute it
        feats = compute()
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, features=feats.numpy())
        os.replace(tmp, path)
        return feats


@dataclass
class LPSettings:
    epochs: int
    lr: float = 0.01
    batch_size: int = 128
    seed: int = 0


@dataclass
class LPOutcome:
    test_probs: torch.Tensor
    best_epoch: int
    curves: list[dict] = field(default_factory=list)
    head: nn.Linear | None = None
    val_probs: torch.Tensor | None = None  # of the chosen epoch


def train_linear_head(train_features: Callable[[torch.Tensor], torch.Tensor], train_y: torch.Tensor,
                      val_features: torch.Tensor, val_y: torch.Tensor, test_features: torch.Tensor,
                      feature_dim: int, n_target: int, s: LPSettings,
                      progress: Callable[[dict], None] | None = None) -> LPOutcome:
    """Adam on a fresh linear head; ``train_features(idx)`` returns the features of training
    images ``idx`` (a cache lookup or a backbone pass). The epoch is chosen by validation
    accuracy (ties: lower validation NLL); the test features are scored once."""
    torch.manual_seed(s.seed)
    head = nn.Linear(feature_dim, n_target).to(train_y.device)
    gen = torch.Generator().manual_seed(s.seed)
    opt = torch.optim.Adam(head.parameters(), lr=s.lr)
    sched = reference_schedule(opt, s.epochs)
    bs = min(s.batch_size, len(train_y))
    selector, curves = EpochSelector(), []
    for epoch in range(1, s.epochs + 1):
        order = torch.randperm(len(train_y), generator=gen).to(train_y.device)
        train_loss, train_acc = train_epoch(lambda idx: head(train_features(idx).float()), train_y, order, bs, opt)
        sched.step()
        with torch.no_grad():
            val_logits = head(val_features)
            val_acc = float((val_logits.argmax(1) == val_y).float().mean())
            val_nll = float(F.cross_entropy(val_logits, val_y))
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "val_acc": val_acc, "val_nll": val_nll}
        curves.append(row)
        selector.offer(epoch, val_acc, val_nll, lambda: {k: v.clone() for k, v in head.state_dict().items()})
        if progress:
            progress({"epochs": s.epochs, **row})
    head.load_state_dict(selector.state)
    with torch.no_grad():
        probs = F.softmax(head(test_features), dim=1)
        val_probs = F.softmax(head(val_features), dim=1)
    return LPOutcome(probs, selector.epoch, curves, head, val_probs)
