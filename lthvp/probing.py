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

from lthvp.models import autocast_for


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
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[int(0.5 * s.epochs), int(0.72 * s.epochs)], gamma=0.1)
    bs = min(s.batch_size, len(train_y))
    best, best_state, best_epoch, curves = (-1.0, float("inf")), None, -1, []
    for epoch in range(s.epochs):
        order = torch.randperm(len(train_y), generator=gen).to(train_y.device)
        loss_sum = torch.zeros((), device=train_y.device)  # on the device: no per-step host sync
        correct = torch.zeros((), device=train_y.device, dtype=torch.long)
        for i in range(0, len(train_y), bs):
            idx = order[i:i + bs]
            logits = head(train_features(idx).float())
            loss = F.cross_entropy(logits, train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == train_y[idx]).sum()
        sched.step()
        loss_sum, correct = float(loss_sum), int(correct)
        with torch.no_grad():
            val_logits = head(val_features)
            val_acc = float((val_logits.argmax(1) == val_y).float().mean())
            val_nll = float(F.cross_entropy(val_logits, val_y))
        row = {"epoch": epoch + 1, "train_loss": loss_sum / len(train_y), "train_acc": correct / len(train_y),
               "val_acc": val_acc, "val_nll": val_nll}
        curves.append(row)
        if (val_acc, -val_nll) > (best[0], -best[1]):
            best = (val_acc, val_nll)
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
            best_epoch = epoch + 1
        if progress:
            progress({"epoch": epoch + 1, "epochs": s.epochs, **row})
    head.load_state_dict(best_state)
    with torch.no_grad():
        probs = F.softmax(head(test_features), dim=1)
    return LPOutcome(probs, best_epoch, curves, head)
