"""Paper-scale ticket families in the TicketFamily layout (``level_{L}.safetensors`` +
``family.json``), built three ways: ``import_family`` (external tickets), ``one_shot_family``
(global magnitude pruning of the pre-trained weights to 0.8^L, no retraining) and
``imp_family_imagefolder`` (IMP rewinding to the pre-trained weights on a user's ImageFolder,
CV_LTH recipe, resumable per level).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from lthvp.results.presets import REPO_ROOT
from lthvp.tickets.families import FAMILY_FILE
from lthvp.tickets.models import autocast_for, build_model, model_spec
from lthvp.tickets.pretrained import expected_weights_file, load_pretrained
from lthvp.tickets.sparsity import (Masks, apply_masks, assert_masked, dense_masks, global_magnitude_prune,
                            random_masks_like, sparsity_report)
from lthvp.tickets.ticket_formats import load_any
from lthvp.tickets.ticketfile import file_sha256

DEFAULT_FAMILY_DIR = REPO_ROOT / "tickets" / "paper"
DEFAULT_IGNORE = ("conv1.weight", "fc.weight")  # CV_LTH: stem conv and classifier stay dense
SPARSITY_COUNTS = ("all_prunable = every Conv2d/Linear weight; without_stem drops conv1; without_stem_and_head "
                   "also drops fc. 'pruned' says which of stem/head were subject to pruning.")


class FamilyWriter:
    """Writes levels into a TicketFamily directory; refuses to mix builders or settings."""

    def __init__(self, directory: str | Path, arch: str, builder: str, settings: dict):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.arch = arch
        self.info_path = self.directory / FAMILY_FILE
        if self.info_path.exists():
            self.info = json.loads(self.info_path.read_text())
            if (self.info.get("builder"), self.info.get("arch"), self.info.get("settings")) != (builder, arch, settings):
                raise ValueError(f"{self.directory} holds a family built by {self.info.get('builder')} with other "
                                 f"settings ({self.info.get('settings')}); use another --out directory")
        else:
            self.info = {"preset": "paper", "arch": arch, "builder": builder, "settings": settings,
                         "levels": {}, "random_levels": {}, "sparsity_counts": SPARSITY_COUNTS}

    def path(self, level: int, arm: str = "ticket") -> Path:
        return self.directory / (f"level_{level}.safetensors" if arm == "ticket" else f"random_level_{level}.safetensors")

    def has(self, level: int, arm: str = "ticket") -> bool:
        key = "levels" if arm == "ticket" else "random_levels"
        return self.path(level, arm).exists() and str(level) in self.info[key]

    def write(self, level: int, model: nn.Module, masks: Masks, arm: str = "ticket", **extra) -> dict:
        from lthvp.tickets.ticketfile import save_ticket_file

        model = model.to("cpu", memory_format=torch.contiguous_format).float()
        assert_masked(model, masks)
        spec = model_spec(self.arch)
        report = sparsity_report(model, masks, spec.stem, spec.head)
        path = self.path(level, arm)
        save_ticket_file(path, model, masks, self.arch, {"level": level, "arm": arm})
        entry = {"file": path.name, "sha256": file_sha256(path), "remaining": report["remaining"],
                 "pruned": {"stem": report["stem"]["pruned"], "head": report["head"]["pruned"]},
                 "layers": report["layers"], **extra}
        self.info["levels" if arm == "ticket" else "random_levels"][str(level)] = entry
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.info, indent=1, sort_keys=True))
        tmp.replace(self.info_path)
        return entry


def _levels(levels: int | Iterable[int]) -> list[int]:
    return list(range(levels + 1)) if isinstance(levels, int) else sorted({int(x) for x in levels})


def one_shot_masks(model: nn.Module, level: int, ignore: Iterable[str] = DEFAULT_IGNORE) -> Masks:
    """Keep 0.8^level of the prunable weights (minus ``ignore``) by one global |w| ranking."""
    if level == 0:
        return dense_masks(model, ignore)
    return global_magnitude_prune(model, None, 1.0 - 0.8 ** level, ignore)


def one_shot_family(weights_path: str | Path | None, levels: int | Iterable[int], out_dir: str | Path = DEFAULT_FAMILY_DIR,
                    arch: str = "resnet50", ignore: Iterable[str] = DEFAULT_IGNORE, random_levels: Iterable[int] = (),
                    download: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """One-shot magnitude pruning of the pre-trained weights at 0.8^L (no retraining): the cheap
    baseline anyone can run. Random pruning at IMP's per-layer counts is the optional second arm."""
    ignore = tuple(ignore)
    settings = {"weights": Path(weights_path).name if weights_path else expected_weights_file(arch).name,
                "ignore": list(ignore), "fraction_per_level": 0.2, "retraining": "none"}
    w = FamilyWriter(out_dir, arch, "one_shot", settings)
    pretrained = None
    for level in _levels(levels):
        todo = [arm for arm, want in (("ticket", True), ("random", level in set(random_levels) and level > 0))
                if want and not w.has(level, arm)]
        if not todo:
            continue
        if pretrained is None:
            pretrained = load_pretrained(arch, weights_path, download)
        masks = one_shot_masks(pretrained, level, ignore)
        for arm in todo:
            m = masks if arm == "ticket" else random_masks_like(masks, seed=level)
            model = build_model(arch, 1000)
            model.load_state_dict(pretrained.state_dict())
            apply_masks(model, m)
            w.write(level, model, m, arm)
            if progress:
                progress(f"{arm} level {level}: kept {0.8 ** level:.4f} of the pruned layers")
    return w.info


_LEVEL_PATTERNS = (r"level_(\d+)", r"_dyn\d+_(\d+)_", r"^(\d+)(?:model_best|checkpoint)")


def infer_level(path: Path, remaining: float | None = None) -> int:
    """Level from the name (OpenLTH level_L, Misra *_dyn4_L_*, CV_LTH {L}model_best) or else from
    the remaining fraction (nearest 0.8^L)."""
    for part in reversed(path.parts):
        for pat in _LEVEL_PATTERNS:
            m = re.search(pat, part)
            if m:
                return int(m.group(1))
    if remaining is None:
        raise ValueError(f"cannot infer the level of {path}; give it as LEVEL=PATH")
    return int(round(math.log(max(remaining, 1e-12)) / math.log(0.8)))


def import_family(files: Mapping[int, object] | Iterable[object], out_dir: str | Path = DEFAULT_FAMILY_DIR,
                  arch: str = "resnet50", progress: Callable[[str], None] | None = None) -> dict:
    """Convert external tickets into a family. ``files``: {level: path or (path, mask_path)} or a
    list of paths / (path, mask_path) whose levels are inferred (name, else remaining fraction)."""
    items = list(files.items()) if isinstance(files, Mapping) else [(None, f) for f in files]
    w = FamilyWriter(out_dir, arch, "import", {"arch": arch})
    for level, item in items:
        path, mask_path = (item if isinstance(item, (tuple, list)) else (item, None))
        model, masks, fmt = load_any(path, mask_path, arch)
        if level is None:
            spec = model_spec(arch)
            rem = sparsity_report(model, masks, spec.stem, spec.head)["remaining"]["without_stem_and_head"]
            level = infer_level(Path(path), rem)
        if str(level) in w.info["levels"] and w.info["levels"][str(level)].get("imported_from") != str(path):
            raise ValueError(f"level {level} already imported from {w.info['levels'][str(level)].get('imported_from')}")
        w.write(int(level), model, masks, imported_from=str(path), format=fmt,
                mask_file=str(mask_path) if mask_path else None)
        if progress:
            progress(f"level {level} <- {path} ({fmt})")
    return w.info


@dataclass
class IMPRecipe:
    """CV_LTH's ImageNet IMP: fine-tune each level from the pre-trained weights (SGD lr 1e-4)."""

    epochs: int = 10
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 256
    image_size: int = 224
    prune_fraction: float = 0.2
    ignore: tuple = DEFAULT_IGNORE
    max_steps: int | None = None  # cap per level (smoke tests, quick runs)
    seed: int = 0
    extra: dict = field(default_factory=dict)


def _imagefolder_loader(folder, recipe: IMPRecipe, train: bool, num_workers: int, seed: int):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    spec = model_spec("resnet50")
    norm = T.Normalize(spec.mean, spec.std)
    if train:
        tf = T.Compose([T.RandomResizedCrop(recipe.image_size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    else:
        tf = T.Compose([T.Resize(int(recipe.image_size * 256 / 224)), T.CenterCrop(recipe.image_size), T.ToTensor(), norm])
    ds = ImageFolder(str(folder), transform=tf)
    return torch.utils.data.DataLoader(ds, batch_size=recipe.batch_size, shuffle=train, num_workers=num_workers,
                                       generator=torch.Generator().manual_seed(seed), pin_memory=torch.cuda.is_available(),
                                       persistent_workers=False, drop_last=False)


@torch.no_grad()
def imagefolder_accuracy(model, loader, device, max_images: int | None = None) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast_for(device):
            correct += (model(x).argmax(1) == y).sum()
        seen += len(y)
        if max_images and seen >= max_images:
            break
    return int(correct) / max(seen, 1)


def finetune_masked(model, masks, loader, recipe: IMPRecipe, device, progress=None) -> dict:
    """SGD with the mask re-applied after every step; loss summed on the device (one sync per level)."""
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    dev_masks = {n: m.to(device) for n, m in masks.items()}
    loss_sum, steps = torch.zeros((), device=device), 0
    model.train()
    for _ in range(recipe.epochs):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_for(device):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            apply_masks(model, dev_masks)
            loss_sum += loss.detach()
            steps += 1
            if progress and steps % 50 == 0:
                progress(f"step {steps}")
            if recipe.max_steps and steps >= recipe.max_steps:
                break
        if recipe.max_steps and steps >= recipe.max_steps:
            break
    model.eval()
    return {"steps": steps, "mean_train_loss": float(loss_sum) / max(steps, 1)}


def imp_family_imagefolder(weights_path: str | Path | None, imagefolder: str | Path, out_dir: str | Path = DEFAULT_FAMILY_DIR,
                           arch: str = "resnet50", levels: int = 10, recipe: IMPRecipe | None = None,
                           val_folder: str | Path | None = None, eval_images: int | None = 10000,
                           num_workers: int = 8, device: str | None = None, download: bool = False,
                           progress: Callable[[str], None] | None = None) -> dict:
    """IMP with rewinding to the pre-trained weights on an ImageFolder (e.g. ImageNet train).

    Level 0 is the pre-trained model (dense arm of the same family). Level L: prune 20% of the
    remaining weights of level L-1's fine-tuned weights, rewind survivors to the pre-trained
    weights, fine-tune with the mask enforced, save. Existing level files are skipped (resume).
    """
    from lthvp.tickets.ticketfile import load_ticket_file

    r = recipe or IMPRecipe()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    settings = {"weights": Path(weights_path).name if weights_path else expected_weights_file(arch).name,
                "imagefolder": str(imagefolder), "epochs": r.epochs, "lr": r.lr, "momentum": r.momentum,
                "weight_decay": r.weight_decay, "batch_size": r.batch_size, "image_size": r.image_size,
                "prune_fraction": r.prune_fraction, "ignore": list(r.ignore), "max_steps": r.max_steps,
                "seed": r.seed, "rewind": "pre-trained weights", "saved": "fine-tuned weights of each level"}
    w = FamilyWriter(out_dir, arch, "imp_imagefolder", settings)
    val = _imagefolder_loader(val_folder, r, False, num_workers, r.seed) if val_folder else None

    def evaluate(model):
        return imagefolder_accuracy(model.to(dev), val, dev, eval_images) if val is not None else None

    pretrained = None
    for level in range(levels + 1):
        if w.has(level):
            continue
        t0 = time.time()
        if pretrained is None:
            pretrained = load_pretrained(arch, weights_path, download)
        model = build_model(arch, 1000)
        model.load_state_dict(pretrained.state_dict())  # rewind
        if level == 0:
            masks = dense_masks(model, r.ignore)
            stats = {"steps": 0}
        else:
            prev, prev_masks, _ = load_ticket_file(w.path(level - 1))
            masks = global_magnitude_prune(prev, prev_masks, r.prune_fraction, r.ignore)
            apply_masks(model, masks)
            torch.manual_seed(r.seed * 1000 + level)
            loader = _imagefolder_loader(imagefolder, r, True, num_workers, r.seed * 1000 + level)
            stats = finetune_masked(model, masks, loader, r, dev,
                                    (lambda s, L=level: progress(f"level {L}: {s}")) if progress else None)
        acc = evaluate(model)
        w.write(level, model, masks, source_val_accuracy=acc, train_seconds=round(time.time() - t0, 1), **stats)
        if progress:
            progress(f"level {level} done ({time.time() - t0:.0f} s, val acc {acc})")
    return w.info


