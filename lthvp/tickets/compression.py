"""Compression algorithms for the arms that sit beside IMP in a ticket family (pure functions on a
model; :mod:`lthvp.tickets.arms` builds the family members from them). They work on the mini
CIFAR ResNet-20 and on torchvision ResNet-18/50 alike.

* One-shot magnitude pruning: one global |w| ranking of the dense model, kept count equal to the
  IMP level's count (:func:`oneshot_masks`).
* Structured L1-norm filter pruning (Li et al., ICLR 2017), expressed with masks so the
  architecture and ticket file stay the same (:func:`structured_masks`). A removed filter zeroes
  the conv's whole output channel, the following BatchNorm channel (gamma and beta set to 0, so
  its output is exactly 0 in train and eval mode) and the next conv's input-channel slice, so the
  parameter count is honest. Only convs *inside* residual blocks are pruned: the first conv of a
  BasicBlock, conv1 and conv2 of a Bottleneck. A block's output channels are tied to its input by
  the identity shortcut, so removing them would need the whole stage pruned alike; they keep
  every channel (as in Li et al.'s ResNet experiments).
* Post-training weight quantization (:func:`fake_quantize_`): symmetric, per output channel,
  fake-quantized in fp32 (``round(w / scale) * scale``, ``scale = max|w| / (2^(b-1) - 1)``);
  zeros stay zero so pruning masks survive. Weight-only: activations and BatchNorm stay float,
  so no calibration data is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn

from lthvp.tickets.sparsity import Masks, dense_masks, global_magnitude_keep, imp_kept_count, prunable_names


# --- one-shot magnitude pruning ------------------------------------------------------------------
def oneshot_masks(model: nn.Module, keep: int | None = None, level: int | None = None, fraction: float = 0.2,
                  ignore: Iterable[str] = ()) -> Masks:
    """Global magnitude pruning of ``model`` (the trained dense level 0) in one step, to ``keep``
    weights, or, given ``level``, to IMP's kept count at that level (:func:`imp_kept_count`: the
    same rounding IMP applies level by level, so the counts are equal, not just close)."""
    if (keep is None) == (level is None):
        raise ValueError("give exactly one of keep (a weight count) and level")
    if keep is None:
        total = sum(m.numel() for m in dense_masks(model, ignore).values())
        keep = imp_kept_count(total, level, fraction)
    return global_magnitude_keep(model, keep, ignore)


# --- structured (filter) pruning -----------------------------------------------------------------
@dataclass(frozen=True)
class FilterGroup:
    """A conv whose output filters may be removed, the BatchNorm after it and the conv that reads
    its output (module names)."""

    conv: str
    bn: str
    next: str


RESIDUAL_RULE = ("only convs inside residual blocks are pruned: conv1 of each BasicBlock (ResNet-20, ResNet-18), "
                 "conv1 and conv2 of each Bottleneck (ResNet-50); block outputs, tied across blocks by the identity "
                 "shortcuts, the stem, the shortcut/downsample convs and the classifier keep every channel")


def filter_groups(model: nn.Module) -> list[FilterGroup]:
    """The prunable filter groups of a ResNet, in module order (see ``RESIDUAL_RULE``)."""
    from torchvision.models.resnet import BasicBlock as TVBasicBlock
    from torchvision.models.resnet import Bottleneck

    from lthvp.tickets.models import BasicBlock

    groups = []
    for name, mod in model.named_modules():
        p = f"{name}." if name else ""
        if isinstance(mod, Bottleneck):
            groups += [FilterGroup(p + "conv1", p + "bn1", p + "conv2"), FilterGroup(p + "conv2", p + "bn2", p + "conv3")]
        elif isinstance(mod, (BasicBlock, TVBasicBlock)):
            groups.append(FilterGroup(p + "conv1", p + "bn1", p + "conv2"))
    if not groups:
        raise ValueError(f"{type(model).__name__} has no residual blocks: structured pruning knows ResNets only")
    mods = dict(model.named_modules())
    for g in groups:
        if mods[g.conv].groups != 1 or mods[g.next].groups != 1:
            raise ValueError(f"{g.conv}: grouped convolutions are not supported by structured pruning")
    return groups


def _area(conv: nn.Conv2d) -> int:
    return int(conv.kernel_size[0] * conv.kernel_size[1])


@dataclass
class StructuredPlan:
    """Result of :func:`structured_masks`: the masks, which filters went, and how close the kept
    count came to the target."""

    masks: Masks
    removed: dict  # conv module name -> sorted removed output-channel indices
    groups: list
    target: int  # weights wanted (over the masked weights)
    kept: int  # weights kept
    total: int  # masked weights
    floor: int  # fewest weights reachable (every pruned conv keeps one filter)
    tolerance: int  # |kept - target| <= tolerance: half the largest single-filter removal

    def summary(self) -> dict:
        return {"target_remaining": self.target / self.total, "achieved_remaining": self.kept / self.total,
                "target_kept": self.target, "kept": self.kept, "tolerance_weights": self.tolerance,
                "floor_remaining": self.floor / self.total,
                "filters_removed": {k: len(v) for k, v in self.removed.items()},
                "filters_total": {g.conv: len(self.masks[g.conv + ".weight"]) for g in self.groups}}


def structured_masks(model: nn.Module, keep: int, ignore: Iterable[str] = ()) -> StructuredPlan:
    """L1-norm filter pruning of ``model`` to about ``keep`` kept weights (counted over the masked
    weights, the set IMP prunes, so the remaining fraction is comparable with IMP's).

    Matching rule (per-layer uniform, filled greedily): filters go one at a time, always from the
    pruned conv that currently keeps the largest fraction of its filters (ties: the earlier
    conv), and within it the filter with the smallest L1 norm of the dense weights (Li et al.'s
    criterion; a conv's filters are ranked on the original weights, independently of the input
    channels its predecessor loses). Every layer so ends within one filter of the same kept
    fraction. Removal stops at the step that brings the count closest to ``keep``: the result is
    within half of one filter's weights (its out-slice plus the next conv's in-slice) of the
    target. Every pruned conv keeps at least one filter; a target below that floor is an error.
    Cross-layer L1 ranking is not used: BatchNorm after each conv makes the weight scale of a
    layer arbitrary, so L1 norms are comparable only within a layer.
    """
    ignore = set(ignore)
    masks = dense_masks(model, ignore)
    groups = filter_groups(model)
    mods = dict(model.named_modules())
    for g in groups:
        for conv in (g.conv, g.next):
            if conv + ".weight" not in masks:
                raise ValueError(f"{conv}.weight is excluded from pruning (ignore) but structured pruning needs it")
    total = sum(m.numel() for m in masks.values())
    out_k = {n[:-len(".weight")]: mods[n[:-len(".weight")]].weight.shape[0] for n in masks}
    in_k = {n[:-len(".weight")]: mods[n[:-len(".weight")]].weight.shape[1] for n in masks}
    area = {c: (_area(mods[c]) if isinstance(mods[c], nn.Conv2d) else 1) for c in out_k}
    n_filters = {g.conv: out_k[g.conv] for g in groups}

    def cost(g):  # weights one more filter of g.conv takes with it (out-slice + next conv's in-slice)
        return area[g.conv] * in_k[g.conv] + area[g.next] * out_k[g.next]

    def count():
        return sum(out_k[c] * in_k[c] * area[c] for c in out_k)

    order = {g.conv: torch.argsort(mods[g.conv].weight.detach().abs().flatten(1).sum(1).cpu(), stable=True).tolist()
             for g in groups}
    removed = {g.conv: [] for g in groups}
    max_cost = max(cost(g) for g in groups)

    def remove(g):
        removed[g.conv].append(order[g.conv][len(removed[g.conv])])
        out_k[g.conv] -= 1
        in_k[g.next] -= 1

    if keep > total or keep < 0:
        raise ValueError(f"keep must be in [0, {total}], got {keep}")
    floor_out, floor_in = dict(out_k), dict(in_k)
    for g in groups:  # the floor: every pruned conv down to one filter
        floor_in[g.next] -= floor_out[g.conv] - 1
        floor_out[g.conv] = 1
    floor = sum(floor_out[c] * floor_in[c] * area[c] for c in out_k)
    if keep < floor - max_cost // 2:
        raise ValueError(f"structured pruning cannot go below {floor / total:.4f} of the prunable weights "
                         f"({RESIDUAL_RULE}; every pruned conv keeps one filter); the target {keep / total:.4f} "
                         f"is below that floor")
    kept = count()
    while kept > keep:
        live = [g for g in groups if out_k[g.conv] > 1]
        if not live:
            break
        g = max(live, key=lambda g: (out_k[g.conv] / n_filters[g.conv], -groups.index(g)))
        after = kept - cost(g)
        if after < keep and keep - after >= kept - keep:  # stopping here is at least as close
            break
        remove(g)
        kept = count()
    assert abs(kept - keep) <= max_cost // 2, (kept, keep)
    for g in groups:
        idx = torch.tensor(sorted(removed[g.conv]), dtype=torch.long)
        if len(idx):
            masks[g.conv + ".weight"][idx] = 0
            masks[g.next + ".weight"][:, idx] = 0
    got = int(sum(int(m.sum()) for m in masks.values()))
    assert got == kept, (got, kept)  # the analytic count and the masks agree
    return StructuredPlan(masks, {k: sorted(v) for k, v in removed.items()}, groups, keep, kept, total, floor,
                          max_cost // 2)


def dead_channels(masks: Masks, group: FilterGroup) -> torch.Tensor:
    """Boolean per output channel of ``group.conv``: True where the mask removed the whole filter."""
    return masks[group.conv + ".weight"].flatten(1).sum(1) == 0


@torch.no_grad()
def zero_pruned_bn(model: nn.Module, masks: Masks, groups: list[FilterGroup]) -> None:
    """Set gamma and beta of every removed filter's BatchNorm channel to 0, so the channel's output
    is exactly 0 whatever its running statistics (call after every fine-tuning step too)."""
    mods = dict(model.named_modules())
    for g in groups:
        dead = dead_channels(masks, g).to(mods[g.bn].weight.device)
        mods[g.bn].weight[dead] = 0
        mods[g.bn].bias[dead] = 0


def check_structured(model: nn.Module, masks: Masks, groups: list[FilterGroup]) -> None:
    """Raise unless every pruned conv's filters are whole (removed entirely, or kept on every input
    channel its predecessor kept), the next conv's input slice of each removed filter is masked
    and its BatchNorm channel is zeroed."""
    mods = dict(model.named_modules())
    for g in groups:
        m = masks[g.conv + ".weight"].flatten(2)  # (out, in, kernel)
        pairs = m[..., 0]
        in_keep = pairs.amax(0)
        alive = pairs.amax(1) > 0
        if not (bool((m == m[..., :1]).all()) and bool((pairs[alive] == in_keep).all())):
            raise AssertionError(f"{g.conv}: a filter is partly masked (structured pruning removes whole filters)")
        dead = dead_channels(masks, g)
        if bool(masks[g.next + ".weight"][:, dead].any()):
            raise AssertionError(f"{g.next}: reads a removed channel of {g.conv}")
        bn = mods[g.bn]
        if bool(bn.weight.detach()[dead].cpu().any()) or bool(bn.bias.detach()[dead].cpu().any()):
            raise AssertionError(f"{g.bn}: a removed channel's gamma/beta are not 0")


# --- weight quantization -------------------------------------------------------------------------
def quantize_weight(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel fake quantization of one weight: ``(round(w/scale)*scale,
    scale)`` with ``scale = max|w| / (2^(bits-1) - 1)`` per channel (dim 0). An all-zero channel
    stays zero (scale 0). Values lie on at most 2^bits - 1 levels per channel; exact zeros stay 0."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in [2, 16], got {bits}")
    qmax = 2 ** (bits - 1) - 1
    flat = w.detach().float().flatten(1) if w.dim() > 1 else w.detach().float().view(1, -1)
    scale = flat.abs().amax(1) / qmax
    safe = torch.where(scale > 0, scale, torch.ones_like(scale)).unsqueeze(1)
    q = torch.round(flat / safe).clamp(-qmax, qmax) * safe
    return q.view_as(w).to(w.dtype), scale


@torch.no_grad()
def fake_quantize_(model: nn.Module, bits: int, masks: Masks | None = None) -> dict:
    """Quantize every Conv2d/Linear weight of ``model`` in place (biases and BatchNorm stay fp32);
    returns what family.json records: bits per weight (nominal, and with the fp32 per-channel
    scales counted), how many weights and channels, and how many kept weights rounded to 0."""
    params = dict(model.named_parameters())
    names = prunable_names(model)
    n_weights = n_channels = rounded_to_zero = 0
    for n in names:
        w = params[n]
        q, scale = quantize_weight(w, bits)
        alive = (masks[n].to(w.device) != 0) if masks is not None and n in masks else torch.ones_like(w, dtype=torch.bool)
        rounded_to_zero += int(((q == 0) & (w != 0) & alive).sum())
        w.copy_(q)
        n_weights += w.numel()
        n_channels += scale.numel()
    quantized = set(names)
    other = sum(p.numel() for k, p in params.items() if k not in quantized)
    return {"bits": bits, "scheme": "symmetric per output channel, fake-quantized in fp32 (weights only)",
            "bits_per_weight": bits, "bits_per_weight_with_scales": bits + 32 * n_channels / n_weights,
            "quantized_weights": n_weights, "channels": n_channels, "float_params": other,
            "kept_weights_rounded_to_zero": rounded_to_zero}
