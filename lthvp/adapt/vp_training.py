"""Training visual prompts: one loop for a single prompt and for a group of prompts that share
one frozen model (the seeds of a cell), stepped together in one forward/backward per step."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lthvp.adapt.prompting import (PadPrompt, VPSettings, fast_frozen, group_logits, mapped_scores, mapping_from_logits,
                                   plan_rounds, random_label_mapping)
from lthvp.adapt.training import EpochSelector, reference_schedule
from lthvp.tickets.models import autocast_for


@dataclass
class VPOutcome:
    test_probs: torch.Tensor
    best_epoch: int
    mapping: list[int]
    mapping_history: list[list[int]]
    curves: list[dict] = field(default_factory=list)
    prompt_image: np.ndarray | None = None
    train_images_seen: int = 0
    val_probs: torch.Tensor | None = None  # of the chosen epoch (temperature scaling, recomputation)
    steps: int = 0


@dataclass
class PromptJob:
    """One prompt to train on a shared frozen model: its data and settings (seeds may differ)."""

    prompt: PadPrompt
    train: tuple  # (x, y) on the device
    val: tuple  # (vx, vy)
    test_x: torch.Tensor
    settings: VPSettings
    progress: Callable[[dict], None] | None = None


def _check_group(jobs: list[PromptJob]) -> None:
    """Prompts train in lockstep, so they must agree on everything but the seed and the data."""
    first = jobs[0]
    for job in jobs[1:]:
        a, b = dataclasses.asdict(first.settings), dataclasses.asdict(job.settings)
        a.pop("seed"), b.pop("seed")
        if a != b or len(job.train[1]) != len(first.train[1]):
            raise ValueError("prompts trained together need equal settings (but the seed) and training-set sizes")


def train_vp_group(model: nn.Module, jobs: list[PromptJob], n_target: int) -> list[VPOutcome]:
    """Train several prompts on one frozen model at once: each step is one forward/backward over
    the prompts' stacked batches, each validation/mapping pass one forward over all of them.
    Every prompt keeps its own seed, data order, optimizer, schedule, ILM mapping and round
    choice, so its outcome is the one it would have alone (to float rounding, since the
    convolutions see other batch sizes); a group of one is :func:`train_vp` exactly."""
    _check_group(jobs)
    s = jobs[0].settings
    device = jobs[0].train[0].device
    net = fast_frozen(model) if s.fast else model
    n_source = model.fc.out_features
    bs = min(s.batch_size, len(jobs[0].train[1]))
    rounds, per_round = plan_rounds(s, len(jobs[0].train[1]), bs)
    remap = s.mapping == "ilm" and per_round > 0
    prompts = [job.prompt for job in jobs]
    gens = [torch.Generator().manual_seed(job.settings.seed) for job in jobs]
    if s.mapping == "rlm":
        mappings = [random_label_mapping(n_source, n_target, job.settings.seed) for job in jobs]
    else:  # FLM, and ILM's first mapping: from the starting prompt
        first = group_logits(net, prompts, [job.train[0] for job in jobs])
        mappings = [mapping_from_logits(lg, job.train[1], n_target, s.assignment) for lg, job in zip(first, jobs)]
    opts = [torch.optim.Adam(p.parameters(), lr=s.lr) for p in prompts]
    scheds = [reference_schedule(opt, rounds) for opt in opts]
    selectors = [EpochSelector() for _ in jobs]
    histories, curves, steps = [[] for _ in jobs], [[] for _ in jobs], 0
    for r in range(1, rounds + 1):
        for hist, mapping in zip(histories, mappings):
            hist.append(list(mapping))
        map_ts = [torch.tensor(m, device=device) for m in mappings]
        stats = [(None, None)] * len(jobs)
        if per_round:
            orders = [torch.cat([torch.randperm(len(job.train[1]), generator=g) for _ in range(per_round)]).to(device)
                      for job, g in zip(jobs, gens)]
            stats = _train_round(net, jobs, map_ts, orders, bs, opts)
            steps += math.ceil(len(orders[0]) / bs)
            for sched in scheds:
                sched.step()
        both = remap and r < rounds
        inputs = [torch.cat([job.val[0], job.train[0]]) if both else job.val[0] for job in jobs]
        for k, (job, logits) in enumerate(zip(jobs, group_logits(net, prompts, inputs, bf16=s.bf16_passes))):
            vy = job.val[1]
            val_probs, val_acc, val_nll = mapped_scores(logits[:len(vy)], mappings[k], vy)
            row = {"epoch": r, "steps": steps, "train_loss": stats[k][0], "train_acc": stats[k][1],
                   "val_acc": val_acc, "val_nll": val_nll}
            curves[k].append(row)
            selectors[k].offer(r, val_acc, val_nll,
                               lambda: (job.prompt.program.detach().clone(), list(mappings[k]), val_probs))
            if both:
                mappings[k] = mapping_from_logits(logits[len(vy):], job.train[1], n_target, s.assignment)
            if job.progress:
                job.progress({"epochs": rounds, **row})
    for job, selector in zip(jobs, selectors):
        with torch.no_grad():
            job.prompt.program.copy_(selector.state[0])
    tests = group_logits(net, prompts, [job.test_x for job in jobs])
    return [VPOutcome(F.softmax(logits[:, sel.state[1]], dim=1), sel.epoch, sel.state[1], hist, curve,
                      job.prompt.border_image(), rounds * per_round * len(job.train[1]), sel.state[2], steps)
            for job, sel, logits, hist, curve in zip(jobs, selectors, tests, histories, curves)]


def _train_round(net, jobs, map_ts, orders, bs, opts) -> list[tuple[float, float]]:
    """One round of lockstep steps: (mean train loss, train accuracy) per prompt. With one prompt
    this is :func:`lthvp.adapt.training.train_epoch`'s arithmetic, step for step."""
    device = orders[0].device
    n = len(orders[0])
    loss_sums = [torch.zeros((), device=device) for _ in jobs]
    hits = [torch.zeros((), device=device, dtype=torch.long) for _ in jobs]
    bf16 = jobs[0].settings.bf16_steps
    for i in range(0, n, bs):
        idx = [order[i:i + bs] for order in orders]
        with autocast_for(device, bf16):
            batch = [job.prompt(job.train[0][ix]) for job, ix in zip(jobs, idx)]
            out = net(torch.cat(batch) if len(batch) > 1 else batch[0])
        parts = out.split([len(ix) for ix in idx])
        logits = [part[:, m].float() for part, m in zip(parts, map_ts)]
        losses = [F.cross_entropy(lg, job.train[1][ix]) for lg, job, ix in zip(logits, jobs, idx)]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        (losses[0] if len(losses) == 1 else torch.stack(losses).sum()).backward()
        for opt in opts:
            opt.step()
        for k, (loss, lg, job, ix) in enumerate(zip(losses, logits, jobs, idx)):
            loss_sums[k] += loss.detach() * len(ix)
            hits[k] += (lg.argmax(1) == job.train[1][ix]).sum()
    return [(float(ls) / n, int(h) / n) for ls, h in zip(loss_sums, hits)]


def train_vp(model: nn.Module, prompt: PadPrompt, train: tuple, val: tuple, test_x: torch.Tensor,
             n_target: int, s: VPSettings, progress: Callable[[dict], None] | None = None) -> VPOutcome:
    """Train the prompt on (train_x, train_y), pick the round by validation accuracy (ties:
    lower validation NLL) and evaluate the test images once with the chosen prompt and mapping.
    The model must be frozen (eval mode, no parameter gradients).

    The validation pass after round r and ILM's mapping pass before round r+1 see the same
    prompt, so they are one forward over validation + training images."""
    return train_vp_group(model, [PromptJob(prompt, train, val, test_x, s, progress)], n_target)[0]
