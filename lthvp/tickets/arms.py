"""Compression arms of a ticket family, built beside its IMP levels and addressed like them.

Each arm is a set of family members ``(arm, level)``: one ticket file per level
(``<arm>_level_<L>.safetensors``), a row in family.json's ``<arm>_levels`` with its sha256, and
the arm's recipe in ``arm_settings``, written by the family's one writer
(:class:`lthvp.tickets.families.FamilyWriter`). The builder is resumable: members already
written are skipped, and adding members with another recipe to a non-empty arm is refused.

* ``oneshot`` / ``oneshot_noft``: level L = global magnitude pruning of the trained dense model
  (level 0) to exactly the kept count of the family's IMP level L; fine-tuned / not.
* ``structured`` / ``structured_noft``: L1-norm filter pruning of level 0 to about the same
  kept count (rule and tolerance: :func:`lthvp.tickets.compression.structured_masks`).
* ``quant8`` / ``quant4``: level L = IMP level L (level 0: the dense model) with its weights
  quantized post-training to 8 / 4 bits (symmetric per output channel, weights only).

Fine-tuning budget (mini families): the last ``finetune_epochs`` epochs (default 1) of the source
recipe's own cosine schedule, replayed with ``train_steps`` (the same batches and learning rates
those steps had, so the learning rate decays from its final-phase value to ~0), a fresh SGD
optimizer and the masks re-applied after every step. One epoch is 1/8 of the source recipe and
about 1/8 of what an IMP level's retraining gets: a cheap repair, stated as such.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch.nn as nn

from lthvp.tickets.compression import (RESIDUAL_RULE, check_structured, fake_quantize_, oneshot_masks,
                                       structured_masks, zero_pruned_bn)
from lthvp.tickets.families import FamilyWriter, TicketFamily
from lthvp.tickets.models import model_spec
from lthvp.tickets.sparsity import apply_masks, assert_masked, imp_kept_count, prunable_names, sparsity_report

COMPRESSION_ARMS = ("oneshot", "oneshot_noft", "structured", "structured_noft", "quant8", "quant4")
PRUNING_ARMS = ("oneshot", "oneshot_noft", "structured", "structured_noft")  # level >= 1
FINETUNED_ARMS = ("oneshot", "structured")
QUANT_BITS = {"quant8": 8, "quant4": 4}
FINETUNE_EPOCHS = 1

MATCHING_RULE = ("kept weights matched to the family's IMP level L (counted over the weights IMP prunes); filters "
                 "removed one at a time from the pruned conv keeping the largest fraction of its filters, "
                 "smallest L1 norm first; achieved within half of one filter's weights of the target")


@dataclass
class SourceTask:
    """What the arms need from the source task: ``accuracy(model)`` on its test split (None when
    unavailable) and, for the fine-tuned arms, ``finetune(model, masks, after_step)`` -> stats,
    with ``budget`` (recorded in arm_settings) describing it."""

    accuracy: Callable[[nn.Module], float | None]
    finetune: Callable | None = None
    budget: dict | None = None
    accuracy_on: str = "source test split"


def mini_source(info: dict, finetune_epochs: int = FINETUNE_EPOCHS) -> SourceTask:
    """The source task of a family built by :func:`lthvp.tickets.imp.build_family`, from the
    settings recorded in its family.json (the same training subset, test split and schedule)."""
    from lthvp.results.presets import IMPSettings
    from lthvp.tickets import imp

    st = dict(info["settings"])
    s = IMPSettings(**{**st, "ignore": tuple(st["ignore"]), "random_levels": tuple(st["random_levels"])})
    if not 1 <= finetune_epochs <= s.epochs:
        raise ValueError(f"finetune_epochs must be in [1, {s.epochs}] (the source recipe's epochs), got {finetune_epochs}")
    spec = model_spec(info["arch"])
    norm = imp._normalize(spec)
    x, y, tx, ty = imp._source_data(s, spec.input_size)
    total = s.epochs * math.ceil(len(y) / s.batch_size)
    start = total - finetune_epochs * math.ceil(len(y) / s.batch_size)

    def lr(step):  # train_steps' cosine schedule
        return 0.5 * s.lr * (1 + math.cos(math.pi * step / total))

    def finetune(model, masks, after_step=None):
        imp.train_steps(model, masks, x, y, s, start, total, norm,
                        on_step=(lambda _step: after_step(model)) if after_step else None)
        return {"steps": total - start}

    budget = {"epochs": finetune_epochs, "steps": total - start,
              "schedule": f"the last {finetune_epochs} epoch(s) of the source recipe's cosine schedule (steps "
                          f"{start}-{total - 1} of {total}: their batches and learning rates), fresh SGD optimizer, "
                          f"masks re-applied after every step",
              "lr_first": lr(start), "lr_last": lr(total - 1), "momentum": s.momentum, "weight_decay": s.weight_decay}
    return SourceTask(lambda model: imp.source_accuracy(model, tx, ty, norm), finetune, budget,
                      f"{s.source_dataset} test split")


def paper_source(val_folder: str | Path | None = None, eval_images: int | None = 10000, num_workers: int = 8,
                 device: str | None = None) -> SourceTask:
    """Paper-scale source: accuracy on an ImageNet-val ImageFolder when given (else None); no
    fine-tuning (that needs ImageNet training; build the *_noft arms)."""
    import torch

    from lthvp.tickets.paper_tickets import IMPRecipe, _imagefolder_loader, imagefolder_accuracy

    if val_folder is None:
        return SourceTask(lambda model: None, accuracy_on="not measured (no --val-folder)")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    loader = _imagefolder_loader(val_folder, IMPRecipe(), False, num_workers, 0)
    return SourceTask(lambda model: imagefolder_accuracy(model.to(dev), loader, dev, eval_images),
                      accuracy_on=f"{val_folder} (first {eval_images} images)")


def arm_settings(arm: str, source: SourceTask) -> dict:
    """The recipe of ``arm`` as family.json's ``arm_settings[arm]`` records it."""
    ft = source.budget if arm in FINETUNED_ARMS else None
    if arm in ("oneshot", "oneshot_noft"):
        return {"method": "global magnitude pruning of level 0 (the trained dense model) in one step",
                "kept": "the family's IMP level L kept count, exactly", "finetune": ft}
    if arm in ("structured", "structured_noft"):
        return {"method": "L1-norm filter pruning (Li et al., ICLR 2017) of level 0, as masks", "residual": RESIDUAL_RULE,
                "matching": MATCHING_RULE, "batchnorm": "gamma and beta of every removed channel set to 0 (output "
                "exactly 0); the next conv's input slice is masked", "finetune": ft}
    if arm in QUANT_BITS:
        return {"method": "post-training weight quantization of IMP level L (level 0 = dense)",
                "bits": QUANT_BITS[arm], "scheme": "symmetric per output channel, scale = max|w| / (2^(bits-1) - 1), "
                "fake-quantized in fp32; zeros stay zero (IMP masks survive)",
                "calibration": "none: weights only, activations and BatchNorm stay float", "finetune": None}
    raise ValueError(f"unknown compression arm {arm!r}; choose from {COMPRESSION_ARMS}")


def _target_keep(info: dict, level: int, total: int) -> tuple[int, str]:
    """Kept count of the family's IMP level ``level`` (its recorded per-layer counts), else IMP's
    rounding rule applied to ``total``."""
    row = (info.get("levels") or {}).get(str(level))
    if row and row.get("layers"):
        return sum(r["kept"] for r in row["layers"] if r["pruned_by_mask"]), f"ticket level {level}"
    fraction = info["settings"].get("prune_fraction", info["settings"].get("fraction_per_level", 0.2))
    return imp_kept_count(total, level, fraction), f"IMP's rounding rule at fraction {fraction}"


def arms_report(info: dict) -> str:
    """The mini family's REPORT.md with a table of its compression arms appended."""
    from lthvp.tickets.imp import family_report

    lines = [family_report(info).rstrip("\n"), "", "## Compression arms", "",
             "Recipes in family.json `arm_settings`; per-layer density in each row's `layers`.", "",
             "| arm | level | remaining, all prunable | without stem | without stem and head | bits/weight | "
             "source test acc | fine-tune steps | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for arm in COMPRESSION_ARMS:
        for level, row in sorted((info.get(f"{arm}_levels") or {}).items(), key=lambda kv: int(kv[0])):
            r, acc = row["remaining"], row.get("source_test_accuracy")
            lines.append(f"| {arm} | {level} | {100 * r['all_prunable']:.2f}% | {100 * r['without_stem']:.2f}% | "
                         f"{100 * r['without_stem_and_head']:.2f}% | {row.get('bits_per_weight', 32)} | "
                         f"{'-' if acc is None else f'{100 * acc:.2f}%'} | "
                         f"{(row.get('finetune') or {}).get('steps', 0)} | {row['train_seconds']} |")
    return "\n".join(lines) + "\n"


def build_arm(directory: str | Path, arm: str, levels: list[int] | None = None, source: SourceTask | None = None,
              finetune_epochs: int = FINETUNE_EPOCHS, progress: Callable[[str], None] | None = None) -> dict:
    """Build (or resume) one compression arm of the family in ``directory``; returns family.json.

    ``levels``: default every IMP level the family has (from 1 for the pruning arms). ``source``:
    default :func:`mini_source` of the family's recorded recipe (families built by IMP).
    """
    if arm not in COMPRESSION_ARMS:
        raise ValueError(f"unknown compression arm {arm!r}; choose from {COMPRESSION_ARMS}")
    info = TicketFamily(directory).info
    mini = info.get("builder") == "imp"
    if source is None:
        if not mini:
            raise ValueError(f"{directory} was built by {info.get('builder')!r}, not the mini IMP builder: pass a "
                             f"source (lthvp.tickets.arms.paper_source) for its accuracy")
        source = mini_source(info, finetune_epochs)
    if arm in FINETUNED_ARMS and source.finetune is None:
        raise ValueError(f"the {arm} arm fine-tunes on the source task, which this family's source cannot do here: "
                         f"build {arm}_noft instead")
    w = FamilyWriter.extend(directory, report=arms_report if mini else None)
    w.arm_settings(arm, arm_settings(arm, source))
    info = w.info
    todo = sorted(set(w.levels("ticket") if levels is None else levels))
    if arm in PRUNING_ARMS:
        if levels is None:
            todo = [lv for lv in todo if lv >= 1]
        elif any(lv < 1 for lv in todo):
            raise ValueError(f"the {arm} arm needs levels >= 1 (level 0 is the dense model)")
    spec = model_spec(info["arch"])
    for level in todo:
        if w.has(level, arm):
            continue
        t0 = time.time()
        if arm in QUANT_BITS:
            model, masks = w.load(level)
            extra = fake_quantize_(model, QUANT_BITS[arm], masks)
            extra = {"bits_per_weight": extra.pop("bits_per_weight"), "quantization": extra,
                     "source": f"ticket level {level}", "finetune": None}
        else:
            model, dense = w.load(0)
            ignore = [n for n in prunable_names(model) if n not in dense]
            keep, target_from = _target_keep(w.info, level, sum(m.numel() for m in dense.values()))
            extra = {"source": "ticket level 0", "target": {"kept": keep, "from": target_from}}
            groups = None
            if arm.startswith("oneshot"):
                masks = oneshot_masks(model, keep=keep, ignore=ignore)
            else:
                plan = structured_masks(model, keep, ignore)
                masks, groups = plan.masks, plan.groups
                extra["structured"] = plan.summary()
            apply_masks(model, masks)
            if groups:
                zero_pruned_bn(model, masks, groups)
            extra["finetune"] = None
            if arm in FINETUNED_ARMS:
                after = (lambda m: zero_pruned_bn(m, masks, groups)) if groups else None
                extra["finetune"] = {**source.budget, **source.finetune(model, masks, after)}
            assert_masked(model, masks)
            if groups:
                check_structured(model, masks, groups)
        report = sparsity_report(model, masks, spec.stem, spec.head)
        acc = source.accuracy(model)
        w.write(level, model, masks, info["arch"], arm, {"remaining": report["remaining"], "layers": report["layers"]},
                source_test_accuracy=acc, source_accuracy_on=source.accuracy_on,
                train_seconds=round(time.time() - t0, 1), **extra)
        if progress:
            progress(f"{arm} level {level}: remaining {100 * report['remaining']['all_prunable']:.2f}% of prunable "
                     f"weights, source accuracy {'-' if acc is None else f'{100 * acc:.2f}%'} "
                     f"({time.time() - t0:.0f} s)")
    return w.info
