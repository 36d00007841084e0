"""Masks and pruning: global magnitude pruning, random pruning at equal sparsity, mask
enforcement and sparsity reports. A mask is a dict ``{param_name: 0/1 float tensor}`` over the
prunable weights (the ``.weight`` of every Conv2d and Linear, minus an ignore list).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch
import torch.nn as nn

Masks = dict[str, torch.Tensor]


def prunable_names(model: nn.Module, ignore: Iterable[str] = ()) -> list[str]:
    """Names of Conv2d/Linear weights, in module order, minus ``ignore``."""
    ignore = set(ignore)
    names = [f"{mod_name}.weight" if mod_name else "weight"
             for mod_name, mod in model.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    unknown = ignore - set(names)
    if unknown:
        raise ValueError(f"ignore lists names that are not prunable weights: {sorted(unknown)}")
    return [n for n in names if n not in ignore]


def dense_masks(model: nn.Module, ignore: Iterable[str] = ()) -> Masks:
    params = dict(model.named_parameters())
    return {n: torch.ones_like(params[n], dtype=torch.float32) for n in prunable_names(model, ignore)}


def _check_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    bad = [n for n in masks if n not in params]
    if bad:
        raise ValueError(f"masks name parameters the model lacks: {bad[:5]}")
    wrong = [n for n, m in masks.items() if m.shape != params[n].shape]
    if wrong:
        raise ValueError(f"mask shapes differ from the weights for: {wrong[:5]}")


def global_magnitude_prune(model: nn.Module, masks: Masks | None, fraction: float = 0.2,
                           ignore: Iterable[str] = ()) -> Masks:
    """Prune ``fraction`` of the currently unpruned prunable weights by global |w| ranking.

    Exactly ``round(fraction * remaining)`` more weights are removed (ties broken by position,
    so the count is exact even with equal magnitudes). Returns new masks; the model is untouched.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if masks is None:
        masks = dense_masks(model, ignore)
    else:
        ignore = set(ignore)
        masks = {n: m for n, m in masks.items() if n not in ignore}
        _check_masks(model, masks)
    params = dict(model.named_parameters())
    names = list(masks)
    scores = torch.cat([params[n].detach().abs().float().flatten().cpu() for n in names])
    alive = torch.cat([masks[n].flatten().cpu() > 0 for n in names])
    n_alive = int(alive.sum())
    n_prune = int(round(fraction * n_alive))
    keep = alive.clone()
    if n_prune > 0:
        alive_idx = alive.nonzero().flatten()
        order = torch.argsort(scores[alive_idx], stable=True)
        keep[alive_idx[order[:n_prune]]] = False
    out: Masks = {}
    offset = 0
    for n in names:
        size = masks[n].numel()
        out[n] = keep[offset:offset + size].view_as(masks[n]).float()
        offset += size
    return out


def imp_kept_count(total: int, level: int, fraction: float = 0.2) -> int:
    """How many of ``total`` prunable weights IMP keeps at ``level``: global_magnitude_prune's own
    rounding (``round(fraction * alive)`` more pruned, Python's round-half-even) applied level after
    level. Other arms use it to match IMP's count exactly, not 0.8**L approximately."""
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    alive = int(total)
    for _ in range(level):
        alive -= int(round(fraction * alive))
    return alive


def global_magnitude_keep(model: nn.Module, keep: int, ignore: Iterable[str] = ()) -> Masks:
    """Keep exactly ``keep`` of the prunable weights (minus ``ignore``): the largest |w| by one
    global ranking, ties broken by position as in :func:`global_magnitude_prune` (one-shot
    pruning straight to a given count)."""
    masks = dense_masks(model, ignore)
    params = dict(model.named_parameters())
    names = list(masks)
    scores = torch.cat([params[n].detach().abs().float().flatten().cpu() for n in names])
    if not 0 <= keep <= scores.numel():
        raise ValueError(f"keep must be in [0, {scores.numel()}], got {keep}")
    kept = torch.ones(scores.numel(), dtype=torch.bool)
    kept[torch.argsort(scores, stable=True)[:scores.numel() - keep]] = False
    out: Masks = {}
    offset = 0
    for n in names:
        size = masks[n].numel()
        out[n] = kept[offset:offset + size].view_as(masks[n]).float()
        offset += size
    return out


def random_masks_like(masks: Masks, seed: int) -> Masks:
    """Random pruning at equal sparsity: each layer keeps as many weights as ``masks`` does,
    at uniformly random positions (OpenLTH's layerwise random-pruning baseline)."""
    gen = torch.Generator().manual_seed(seed)
    out: Masks = {}
    for n, m in masks.items():
        k = int(m.sum())
        flat = torch.zeros(m.numel())
        flat[torch.randperm(m.numel(), generator=gen)[:k]] = 1.0
        out[n] = flat.view_as(m)
    return out


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place (call after every optimizer step)."""
    params = dict(model.named_parameters())
    for n, m in masks.items():
        params[n].mul_(m.to(params[n].device, params[n].dtype))


def remaining_fraction(model_or_masks) -> float:
    """Fraction of prunable weights that are kept. Given a model, counts its non-zero prunable
    weights; given masks, counts ones."""
    if isinstance(model_or_masks, nn.Module):
        params = dict(model_or_masks.named_parameters())
        tensors = [params[n].detach() != 0 for n in prunable_names(model_or_masks)]
    else:
        tensors = [m != 0 for m in model_or_masks.values()]
    total = sum(t.numel() for t in tensors)
    if total == 0:
        raise ValueError("no prunable weights")
    return float(sum(int(t.sum()) for t in tensors) / total)


def assert_masked(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Raise if any pruned weight became non-zero (the 'silently densified ticket' bug)."""
    params = dict(model.named_parameters())
    leaks = [n for n, m in masks.items() if bool((params[n].detach()[m.to(params[n].device) == 0] != 0).any())]
    if leaks:
        raise AssertionError(f"pruned weights are non-zero in {leaks[:5]}: masks were not enforced")


def sparsity_report(model: nn.Module, masks: Mapping[str, torch.Tensor], stem: str, head: str) -> dict:
    """Remaining fraction counted three ways, plus per-layer density.

    'all_prunable' counts every Conv2d/Linear weight (masked or not); 'without_stem' drops the
    stem conv; 'without_stem_and_head' also drops the classifier.
    """
    params = dict(model.named_parameters())
    layers = []
    for n in prunable_names(model):
        total = params[n].numel()
        kept = int(masks[n].sum()) if n in masks else total
        layers.append({"name": n, "total": total, "kept": kept, "density": kept / total,
                       "pruned_by_mask": n in masks})

    def frac(exclude):
        rows = [r for r in layers if r["name"] not in exclude]
        return sum(r["kept"] for r in rows) / sum(r["total"] for r in rows)

    return {
        "remaining": {"all_prunable": frac(()), "without_stem": frac({stem}),
                      "without_stem_and_head": frac({stem, head})},
        "stem": {"name": stem, "pruned": stem in masks}, "head": {"name": head, "pruned": head in masks},
        "layers": layers,
    }
