"""The small training loop VP and LP share: the reference LR schedule, one epoch of
mini-batch steps with device-side statistics, and epoch selection on the validation split."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F


def reference_schedule(opt: torch.optim.Optimizer, epochs: int):
    """ILM-VP's schedule: x0.1 at 50% and 72% of the epochs."""
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[int(0.5 * epochs), int(0.72 * epochs)], gamma=0.1)


def train_epoch(forward: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, order: torch.Tensor,
                batch_size: int, opt: torch.optim.Optimizer) -> tuple[float, float]:
    """Cross-entropy steps over ``order`` in batches; ``forward(idx)`` returns logits for
    samples idx. Loss and hits are summed on the device (one host sync per epoch).
    Returns (mean train loss, train accuracy)."""
    loss_sum = torch.zeros((), device=y.device)
    correct = torch.zeros((), device=y.device, dtype=torch.long)
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        logits = forward(idx)
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.argmax(1) == y[idx]).sum()
    return float(loss_sum) / len(order), int(correct) / len(order)


class EpochSelector:
    """Keeps the epoch with the best validation accuracy (ties: lower validation NLL).
    The test split plays no part in the choice."""

    def __init__(self):
        self.key = (-1.0, float("-inf"))
        self.epoch, self.state = -1, None

    def offer(self, epoch: int, val_acc: float, val_nll: float, snapshot: Callable[[], Any]) -> None:
        if (val_acc, -val_nll) > self.key:
            self.key, self.epoch, self.state = (val_acc, -val_nll), epoch, snapshot()
