"""Linear probing: a new linear head on frozen penultimate features.

Features depend only on (ticket, dataset, split and its content digest, transform), so they are
extracted once and cached as NPZ files; the head is then trained on the cached features. A cached
entry is used only after it proves itself (its key, shape, dtype, finiteness and checksum): a
cache file overwritten with random arrays of the right shape once turned a stored LP accuracy of
0.334 into 0.091 without a word. ``train_linear_head``
takes a feature function, so the same loop can also run through the backbone (used by tests
and the benchmark to check that caching changes nothing but speed).
"""

from __future__ import annotations

import hashlib
import logging
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

log = logging.getLogger(__name__)
_CACHE_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


@torch.no_grad()
def extract_features(model: nn.Module, x: torch.Tensor, prepare: Callable[[torch.Tensor], torch.Tensor],
                     batch_size: int = 256) -> torch.Tensor:
    """Penultimate features of ``prepare(x[batch])`` with the model in eval mode."""
    model.eval()
    with autocast_for(next(model.parameters()).device):
        return torch.cat([model.features(prepare(x[i:i + batch_size])).float() for i in range(0, len(x), batch_size)])


def split_digest(split) -> str:
    """sha256 of a split's pixels and labels (dtype and shape included), computed once per loaded
    split and kept on it: the feature cache's key then changes whenever the data does."""
    digest = getattr(split, "_lthvp_digest", None)
    if digest is None:
        h = hashlib.sha256()
        for t in (split.x, split.y):
            arr = t.detach().cpu().contiguous().numpy()
            h.update(f"{arr.dtype}{arr.shape}".encode())
            h.update(arr)
        digest = h.hexdigest()[:16]
        split._lthvp_digest = digest
    return digest


def _checksum(feats: np.ndarray) -> str:
    h = hashlib.sha256(f"{feats.dtype.str}{feats.shape}".encode())
    h.update(np.ascontiguousarray(feats))
    return h.hexdigest()


class FeatureCache:
    """NPZ files keyed by a digest of (ticket id, dataset, split, transform, ...). Each file holds
    its features, the full key, their shape, dtype and sha256; :meth:`get_or_compute` uses a file
    only when all of them match (and the caller's expected shape), and recomputes anything else
    with a logged warning. A writer who can also recompute sha256 is not stopped: the directory
    is the server's own (created 0700)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, *key_parts: str) -> Path:
        digest = hashlib.sha256("|".join(key_parts).encode()).hexdigest()[:24]
        return self.directory / f"{digest}.npz"

    def _read(self, path: Path, key: str, shape, dtype) -> tuple[torch.Tensor | None, str]:
        """(features, "") when the file proves itself, else (None, what is wrong)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                stored = {name: f[name] for name in ("features", "key", "shape", "dtype", "sha256") if name in f.files}
        except _CACHE_ERRORS as err:
            return None, f"unreadable ({type(err).__name__})"
        feats = stored.get("features")
        if feats is None or len(stored) < 5:
            return None, "written without its key, shape, dtype and checksum"
        if str(stored["key"]) != key:
            return None, "written for another key"
        if feats.dtype != np.dtype(str(stored["dtype"])) or feats.dtype != np.dtype(dtype):
            return None, f"dtype {feats.dtype}, expected {np.dtype(dtype)}"
        if list(feats.shape) != stored["shape"].tolist() or (shape is not None and tuple(feats.shape) != tuple(shape)):
            return None, f"shape {tuple(feats.shape)}, expected {tuple(shape) if shape else tuple(stored['shape'])}"
        if not np.isfinite(feats).all():
            return None, "non-finite features"
        if _checksum(feats) != str(stored["sha256"]):
            return None, "checksum mismatch"
        return torch.from_numpy(feats), ""

    def get_or_compute(self, key_parts: tuple[str, ...], compute: Callable[[], torch.Tensor],
                       shape: tuple[int, ...] | None = None, dtype=np.float32) -> torch.Tensor:
        """The cached features of ``key_parts`` if the file proves itself (and has ``shape`` and
        ``dtype`` when given), else ``compute()``, stored for next time."""
        path, key = self.path(*key_parts), "|".join(key_parts)
        if path.exists():
            feats, problem = self._read(path, key, shape, dtype)
            if feats is not None:
                return feats
            log.warning("feature cache %s: %s; recomputing, never using it", path, problem)
            path.unlink(missing_ok=True)
        feats = compute()
        array = feats.numpy()
        self.directory.mkdir(parents=True, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, features=array, key=np.array(key), shape=np.array(array.shape, dtype=np.int64),
                         dtype=np.array(array.dtype.str), sha256=np.array(_checksum(array)))
            os.replace(tmp, path)
        except OSError as err:  # a cache that cannot be written only costs the next run its speed
            Path(tmp).unlink(missing_ok=True)
            log.warning("feature cache %s not written: %s", path, err)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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
