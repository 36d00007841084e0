"""Ticket families: iterative magnitude pruning (IMP) with rewinding, resumable level by level.

Level 0 trains the dense source model and saves the rewind point (weights after
``rewind_step`` steps). Level L prunes 20% of the remaining prunable weights of level L-1's
trained weights by global magnitude, rewinds the survivors to the rewind point and retrains
for the rest of the schedule with the mask re-applied after every optimizer step. The
random-pruning arm uses IMP's per-layer counts at random positions, with the same rewind and
recipe, so the two arms differ only in which weights were kept.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lthvp.data import load_dataset, resize, stratified_holdout
from lthvp.models import build_model, model_spec
from lthvp.presets import IMPSettings, Preset
from lthvp.sparsity import (Masks, apply_masks, assert_masked, dense_masks, global_magnitude_prune,
                            random_masks_like, sparsity_report)
from lthvp.ticketfile import file_sha256, load_ticket_file, save_ticket_file

FAMILY_FILE = "family.json"


class TicketFamily:
    """A directory of per-level ticket files plus ``family.json`` (settings, accuracy, sparsity)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    @property
    def info(self) -> dict:
        path = self.directory / FAMILY_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"no ticket family at {self.directory}: run `python -m lthvp tickets --preset <name>` to build it")
        return json.loads(path.read_text())

    def level_path(self, level: int, arm: str = "ticket") -> Path:
        return self.directory / (f"level_{level}.safetensors" if arm == "ticket" else f"random_level_{level}.safetensors")

    def load(self, level: int, arm: str = "ticket"):
        path = self.level_path(level, arm)
        if not path.exists():
            built = sorted(self.info.get("levels", {}), key=int) if arm == "ticket" else \
                sorted(self.info.get("random_levels", {}), key=int)
            raise FileNotFoundError(f"{arm} level {level} is not in the family at {self.directory} "
                                    f"(built: {', '.join(built) or 'none'})")
        model, masks, _ = load_ticket_file(path)
        return model, masks

    def ticket_id(self, level: int, arm: str = "ticket") -> str:
        """Content identity of one level (feature-cache key): the file's recorded digest."""
        key = "levels" if arm == "ticket" else "random_levels"
        return f"{self.directory.name}:{arm}:{level}:{self.info[key][str(level)]['sha256']}"


def _source_data(s: IMPSettings, size: int):
    data = load_dataset(s.source_dataset)
    y = data.train.y.numpy()
    keep_fraction = min(1.0, s.train_images / len(y))
    _, chosen = stratified_holdout(y, keep_fraction, s.seed) if keep_fraction < 1 else (None, np.arange(len(y)))
    train = data.train.subset(chosen)
    return resize(train.x, size), train.y, resize(data.test.x, size), data.test.y


def _normalize(spec):
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return lambda x: (x - mean) / std


def train_steps(model, masks: Masks | None, x, y, s: IMPSettings, start: int, stop: int, norm,
                on_step: Callable[[int], None] | None = None):
    """SGD steps [start, stop) of the fixed schedule (cosine LR, epoch-seeded data order), masks
    re-applied after every step. Step k always sees the same batch and LR, so rewinding to k and
    resuming is exactly 'continue the schedule from k'."""
    steps_per_epoch = math.ceil(len(y) / s.batch_size)
    total = s.epochs * steps_per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    model.train()
    order = None
    for step in range(start, stop):
        epoch, i = divmod(step, steps_per_epoch)
        if order is None or i == 0:
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(s.seed * 1000 + epoch))
        for g in opt.param_groups:
            g["lr"] = 0.5 * s.lr * (1 + math.cos(math.pi * step / total))
        idx = order[i * s.batch_size:(i + 1) * s.batch_size]
        loss = F.cross_entropy(model(norm(x[idx])), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if masks is not None:
            apply_masks(model, masks)
        if on_step:
            on_step(step)
    model.eval()
    return total


@torch.no_grad()
def source_accuracy(model, x, y, norm, batch_size: int = 500) -> float:
    model.eval()
    correct = sum(int((model(norm(x[i:i + batch_size])).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(y), batch_size))
    return correct / len(y)


def family_report(info: dict) -> str:
    """Markdown sparsity report: remaining weights three ways and source test accuracy per level."""
    lines = [f"# Ticket family `{info['preset']}` ({info['arch']})", "",
             f"Source: {info['settings']['source_dataset']}; settings in family.json. {info['sparsity_counts']}.", "",
             "| arm | level | remaining, all prunable | without stem | without stem and head | source test acc | train s |",
             "|---|---|---|---|---|---|---|"]
    for arm, key in (("IMP", "levels"), ("random", "random_levels")):
        for level, row in sorted(info[key].items(), key=lambda kv: int(kv[0])):
            r = row["remaining"]
            lines.append(f"| {arm} | {level} | {100 * r['all_prunable']:.2f}% | {100 * r['without_stem']:.2f}% | "
                         f"{100 * r['without_stem_and_head']:.2f}% | {100 * row['source_test_accuracy']:.2f}% | "
                         f"{row['train_seconds']} |")
    lines += ["", "Per-layer density of every level: `layers` in family.json."]
    return "\n".join(lines) + "\n"


def build_family(preset: Preset, directory: str | Path | None = None, levels: int | None = None,
                 progress: Callable[[str, int, int], None] | None = None, settings: IMPSettings | None = None) -> dict:
    """Build (or resume) a preset's ticket family; returns family.json's content.

    Existing level files are kept and skipped; settings differing from a previous partial build
    raise instead of silently mixing recipes.
    """
    s = settings or preset.imp
    directory = Path(directory or preset.family_dir)
    directory.mkdir(parents=True, exist_ok=True)
    family = TicketFamily(directory)
    info_path = directory / FAMILY_FILE
    settings_dict = {**asdict(s), "ignore": list(s.ignore), "random_levels": list(s.random_levels)}
    if levels is not None:
        settings_dict["levels"] = levels
    max_level = settings_dict["levels"]
    if info_path.exists():
        info = json.loads(info_path.read_text())
        old = {k: v for k, v in info["settings"].items() if k != "levels"}
        if old != {k: v for k, v in settings_dict.items() if k != "levels"}:
            raise ValueError(f"{directory} holds a family built with other settings; use another directory")
        info["settings"]["levels"] = max(max_level, info["settings"]["levels"])
    else:
        info = {"preset": preset.name, "arch": preset.arch, "settings": settings_dict, "levels": {},
                "random_levels": {},
                "sparsity_counts": "all_prunable = every Conv2d/Linear weight (stem conv and fc included and pruned); "
                                   "without_stem and without_stem_and_head exclude those layers from the count"}
    spec = model_spec(preset.arch)
    x, y, tx, ty = _source_data(s, spec.input_size)
    norm = _normalize(spec)
    torch.manual_seed(s.seed)
    steps_per_epoch = math.ceil(len(y) / s.batch_size)
    total = s.epochs * steps_per_epoch
    rewind_path = directory / "rewind.safetensors"

    def save_info():
        tmp = info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
        tmp.replace(info_path)
        (directory / "REPORT.md").write_text(family_report(info))

    def finish(model, masks, path, key, level, t0):
        assert_masked(model, masks)
        report = sparsity_report(model, masks, spec.stem, spec.head)
        acc = source_accuracy(model, tx, ty, norm)
        save_ticket_file(path, model, masks, preset.arch, {"level": level, "arm": key})
        info[key][str(level)] = {"file": path.name, "sha256": file_sha256(path), "source_test_accuracy": acc,
                                 "remaining": report["remaining"], "layers": report["layers"],
                                 "train_seconds": round(time.time() - t0, 1)}
        save_info()

    def tick(label):
        return (lambda step: progress(label, step + 1, total)) if progress else None

    if not family.level_path(0).exists():
        t0 = time.time()
        model = build_model(preset.arch, 10)
        masks = dense_masks(model, s.ignore)
        train_steps(model, masks, x, y, s, 0, s.rewind_step, norm, tick("level 0"))
        save_ticket_file(rewind_path, model, masks, preset.arch, {"rewind_step": s.rewind_step})
        train_steps(model, masks, x, y, s, s.rewind_step, total, norm, tick("level 0"))
        finish(model, masks, family.level_path(0), "levels", 0, t0)
    for level in range(1, max_level + 1):
        if family.level_path(level).exists():
            continue
        t0 = time.time()
        prev, prev_masks = family.load(level - 1)
        masks = global_magnitude_prune(prev, prev_masks, s.prune_fraction, s.ignore)
        model, _, _ = load_ticket_file(rewind_path)
        apply_masks(model, masks)
        train_steps(model, masks, x, y, s, s.rewind_step, total, norm, tick(f"level {level}"))
        finish(model, masks, family.level_path(level), "levels", level, t0)
    for level in s.random_levels:
        if level > max_level or family.level_path(level, "random").exists():
            continue
        t0 = time.time()
        _, imp_masks = family.load(level)
        masks = random_masks_like(imp_masks, seed=s.seed * 1000 + level)
        model, _, _ = load_ticket_file(rewind_path)
        apply_masks(model, masks)
        train_steps(model, masks, x, y, s, s.rewind_step, total, norm, tick(f"random level {level}"))
        finish(model, masks, family.level_path(level, "random"), "random_levels", level, t0)
    return info
