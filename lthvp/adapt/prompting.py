"""Visual prompting (ILM-VP): a trainable border around the zero-padded target image, and an
output label mapping from source classes to target classes. The training loop lives in
:mod:`lthvp.adapt.vp_training`.

Forward pass: image (resized to ``image_size``) -> zero-pad into the source canvas ->
+ sigmoid(program) * border_mask -> source normalisation -> frozen source model ->
source logits[:, mapping] (T logits; softmax over them gives the probabilities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F



class PadPrompt(nn.Module):
    """ILM-VP's expansive prompt: trainable pixels on the border of a ``canvas`` x ``canvas`` input."""

    def __init__(self, canvas: int, image_size: int, mean, std):
        super().__init__()
        if not 0 < image_size <= canvas:
            raise ValueError(f"image_size must be in [1, {canvas}], got {image_size}")
        self.canvas, self.image_size = canvas, image_size
        self.pad_lo = (canvas - image_size + 1) // 2
        self.pad_hi = (canvas - image_size) // 2
        mask = torch.ones(1, 1, canvas, canvas)
        mask[..., self.pad_lo:self.pad_lo + image_size, self.pad_lo:self.pad_lo + image_size] = 0
        self.register_buffer("mask", mask)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.program = nn.Parameter(torch.zeros(3, canvas, canvas))  # zero init = grey border

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size) or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, {self.image_size}, {self.image_size}), got {tuple(x.shape)}")
        return F.pad(x, (self.pad_lo, self.pad_hi, self.pad_lo, self.pad_hi), value=0.0)

    def prompted(self, x: torch.Tensor) -> torch.Tensor:
        """The prompted image in [0, 1] pixel space (before normalisation)."""
        return self.pad(x) + torch.sigmoid(self.program) * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.prompted(x) - self.mean) / self.std

    def border_image(self) -> np.ndarray:
        """The learned border as an (H, W, 3) uint8 image (the image area is black)."""
        img = (torch.sigmoid(self.program) * self.mask[0]).detach().cpu().permute(1, 2, 0).numpy()
        return np.round(img * 255).astype(np.uint8)


def count_matrix(source_pred: torch.Tensor, target: torch.Tensor, n_source: int, n_target: int) -> torch.Tensor:
    """counts[s, t] = how often source class s is the top-1 prediction for target class t."""
    flat = source_pred.long() * n_target + target.long()
    return torch.bincount(flat, minlength=n_source * n_target).view(n_source, n_target)


def greedy_label_mapping(counts) -> list[int]:
    """ILM-VP's greedy one-to-one mapping: repeatedly take the largest cell (ties: first in
    row-major order), assign its source s to its target t, strike out row s and column t."""
    c = np.array(counts.detach().cpu() if hasattr(counts, "detach") else counts, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"counts must be a (S, T) matrix, got shape {c.shape}")
    n_source, n_target = c.shape
    if n_source < n_target:
        raise ValueError(f"need at least as many source classes as target classes (S={n_source} < T={n_target})")
    mapping = [-1] * n_target
    for _ in range(n_target):
        s, t = np.unravel_index(int(np.argmax(c)), c.shape)  # argmax returns the first maximum
        mapping[t] = int(s)
        c[s, :] = -np.inf
        c[:, t] = -np.inf
    return mapping


def hungarian_label_mapping(counts) -> list[int]:
    """One-to-one mapping maximising the total count (optimal, unlike the greedy rule)."""
    from scipy.optimize import linear_sum_assignment

    c = np.asarray(counts.detach().cpu() if hasattr(counts, "detach") else counts, dtype=np.float64)
    if c.shape[0] < c.shape[1]:
        raise ValueError(f"need at least as many source classes as target classes (S={c.shape[0]} < T={c.shape[1]})")
    rows, cols = linear_sum_assignment(c, maximize=True)
    mapping = [-1] * c.shape[1]
    for s, t in zip(rows, cols):
        mapping[int(t)] = int(s)
    return mapping


def random_label_mapping(n_source: int, n_target: int, seed: int) -> list[int]:
    """RLM: a seeded random one-to-one map."""
    if n_source < n_target:
        raise ValueError(f"need at least as many source classes as target classes (S={n_source} < T={n_target})")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_source, generator=gen)[:n_target].tolist()


ASSIGNERS = {"greedy": greedy_label_mapping, "hungarian": hungarian_label_mapping}


@dataclass
class VPSettings:
    epochs: int | None = None
    lr: float = 0.01
    batch_size: int = 128
    mapping: str = "ilm"
    assignment: str = "greedy"
    seed: int = 0
    steps: int | None = None  # optimizer-step budget (then epochs are derived); 0 = prompt frozen
    fast: bool = True  # BatchNorm folded + channels-last copy of the frozen model (same results)
    bf16_passes: bool = False  # mapping + validation passes under CPU bf16 autocast (test pass stays fp32)
    bf16_steps: bool = False  # training steps under CPU bf16 autocast (always on CUDA)


EVAL_BATCH = 128  # CPU inference batch: 128 measured faster than 256 here (cache); same results
EVAL_BATCH_CUDA = 512
MAX_ROUNDS = 50  # with a step budget: at most this many (re-map, validate) rounds per run


class ChannelsLast(nn.Module):
    """Feeds a channels-last model; keeps ``fc`` visible (the source class count)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.fc = model, model.fc

    def forward(self, x):
        return self.model(x.contiguous(memory_format=torch.channels_last))


def fast_frozen(model: nn.Module) -> nn.Module:
    """A copy of a frozen model for VP: BatchNorm folded into the convolutions (its eval
    statistics are constants) and channels-last; 1.7-2x per VP step on this CPU. The weights
    of the original model are untouched (sparsity checks keep reading them)."""
    from torch.fx.experimental.optimization import fuse

    fused = fuse(model.eval(), inplace=False).to(memory_format=torch.channels_last)
    for p in fused.parameters():
        p.requires_grad_(False)
    return ChannelsLast(fused).eval()


def plan_rounds(s: VPSettings, n_train: int, batch_size: int) -> tuple[int, int]:
    """(rounds, epochs per round). Without a step budget a round is one epoch (ILM-VP); with
    one, whole epochs are grouped into <= MAX_ROUNDS rounds covering at least ``steps`` steps."""
    if s.steps is None:
        return s.epochs, 1
    if s.steps == 0:
        return 1, 0
    epochs = math.ceil(s.steps / math.ceil(n_train / batch_size))
    per_round = math.ceil(epochs / MAX_ROUNDS)
    return math.ceil(epochs / per_round), per_round


def group_logits(net: nn.Module, prompts: list[PadPrompt], xs: list[torch.Tensor], bf16: bool = False,
                 batch_size: int | None = None) -> list[torch.Tensor]:
    """Source logits (fp32 out) of each prompt on its own images, in EVAL_BATCH chunks of the
    images of all prompts laid end to end: one forward per chunk for a whole group of prompts
    (:mod:`lthvp.adapt.vp_training`). CPU bf16 autocast only when asked (``precision=bf16``): it
    can flip argmax ties among many classes and moves the ECE inputs."""
    device = xs[0].device
    batch_size = batch_size or (EVAL_BATCH_CUDA if device.type == "cuda" else EVAL_BATCH)
    bounds = np.cumsum([0] + [len(x) for x in xs])
    out = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cpu"):
        for lo in range(0, int(bounds[-1]), batch_size):
            hi = min(lo + batch_size, int(bounds[-1]))
            pieces = [prompts[k](xs[k][max(lo, bounds[k]) - bounds[k]:min(hi, bounds[k + 1]) - bounds[k]])
                      for k in range(len(xs)) if bounds[k] < hi and bounds[k + 1] > lo]
            out.append(net(torch.cat(pieces) if len(pieces) > 1 else pieces[0]).float())
    logits = torch.cat(out)
    return [logits[bounds[k]:bounds[k + 1]] for k in range(len(xs))]


def source_logits(model: nn.Module, prompt: PadPrompt, x: torch.Tensor, batch_size: int | None = None,
                  bf16: bool = False) -> torch.Tensor:
    """One prompt's source logits (:func:`group_logits` of a group of one)."""
    return group_logits(model, [prompt], [x], bf16, batch_size)[0]


def mapping_from_logits(logits, y, n_target, assignment) -> list[int]:
    counts = count_matrix(logits.argmax(1), y, logits.shape[1], n_target)  # on the device; one copy
    return ASSIGNERS[assignment](counts.cpu())


def mapped_scores(logits, mapping, y) -> tuple[torch.Tensor, float, float]:
    probs = F.softmax(logits[:, mapping], dim=1)
    acc = float((probs.argmax(1) == y).float().mean())
    nll = float(F.nll_loss(torch.log(probs.clamp_min(1e-12)), y))
    return probs, acc, nll
