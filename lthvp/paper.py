"""Paper scale: ImageNet ResNet-50/18 sources, their ticket families, and the target datasets.

* ``load_pretrained``: torchvision ImageNet weights from a local file (strict, weights_only) or a
  torchvision download when allowed; offline without the file -> a message naming file and folder.
* Ticket families in the TicketFamily layout (``level_{L}.safetensors`` + ``family.json``), built
  three ways: ``import_family`` (external tickets), ``one_shot_family`` (global magnitude pruning
  of the pre-trained weights to 0.8^L, no retraining), ``imp_family_imagefolder`` (IMP rewinding to
  the pre-trained weights on a user's ImageFolder, CV_LTH recipe, resumable per level).
* Target datasets registered into ``lthvp.data.DATASETS``: decoded and resized once to a storage
  size (32 or 128), cached as NPZ under the data root, held as uint8 like every other dataset.

CLI: ``python -m lthvp.paper one-shot|import|imp|prepare-data ...`` (see docs/PAPER.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lthvp.data import (DATASETS, SPLIT_SEED, DatasetSpec, DataMissingError, Split, TargetData, data_root,
                        stratified_holdout)
from lthvp.models import build_model, model_spec
from lthvp.sparsity import (Masks, apply_masks, assert_masked, dense_masks, global_magnitude_prune,
                            random_masks_like, sparsity_report)
from lthvp.ticket_formats import _validate, load_any, strip_prefixes, unwrap

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FAMILY_DIR = REPO_ROOT / "tickets" / "paper"
DEFAULT_IGNORE = ("conv1.weight", "fc.weight")  # CV_LTH: stem conv and classifier stay dense
FAMILY_FILE = "family.json"
SPARSITY_COUNTS = ("all_prunable = every Conv2d/Linear weight; without_stem drops conv1; without_stem_and_head "
                   "also drops fc. 'pruned' says which of stem/head were subject to pruning.")

# ----------------------------------------------------------------------------------------------
# Pre-trained weights

PRETRAINED = {"resnet50": ("ResNet50_Weights", "IMAGENET1K_V2"), "resnet18": ("ResNet18_Weights", "IMAGENET1K_V1")}


def weights_enum(arch: str):
    import torchvision.models as tvm

    if arch not in PRETRAINED:
        raise ValueError(f"no ImageNet weights registered for {arch!r}; choose from {sorted(PRETRAINED)}")
    enum_name, member = PRETRAINED[arch]
    return getattr(getattr(tvm, enum_name), member)


def expected_weights_file(arch: str) -> Path:
    """Where torchvision caches the weights: $TORCH_HOME/hub/checkpoints/<file from the URL>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_enum(arch).url).name


def load_state_strict(model: nn.Module, path: Path) -> nn.Module:
    """Load a dense checkpoint (raw, wrapped or prefixed) with the strict key/shape check."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    state, _ = unwrap(obj)
    state = strip_prefixes(state)
    _validate(model, state, {}, str(path))
    model.load_state_dict(state, strict=all(k in state for k in model.state_dict()))
    return model


def load_pretrained(arch: str = "resnet50", weights_path: str | Path | None = None, download: bool = False) -> nn.Module:
    """ImageNet model (eval mode) from ``weights_path``, torchvision's cache, or a download."""
    model = build_model(arch, 1000)
    enum = weights_enum(arch)
    path = Path(weights_path) if weights_path else expected_weights_file(arch)
    if path.exists():
        return load_state_strict(model, path).eval()
    if weights_path is None and download:
        try:
            model.load_state_dict(enum.get_state_dict(progress=True, check_hash=True))
        except Exception as err:  # offline, proxy, partial file
            raise DataMissingError(f"could not download {enum.url} ({err}); put the file at {path} "
                                   f"or pass --weights PATH") from None
        return model.eval()
    raise DataMissingError(
        f"ImageNet weights for {arch} ({type(enum).__name__}.{enum.name}) not found: expected {path}. "
        f"Download {enum.url} and put it in {path.parent} (or set TORCH_HOME), pass --weights PATH, "
        "or allow the download with --download.")


# ----------------------------------------------------------------------------------------------
# Ticket families


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        from lthvp.ticketfile import save_ticket_file

        model = model.to("cpu", memory_format=torch.contiguous_format).float()
        assert_masked(model, masks)
        spec = model_spec(self.arch)
        report = sparsity_report(model, masks, spec.stem, spec.head)
        path = self.path(level, arm)
        save_ticket_file(path, model, masks, self.arch, {"level": level, "arm": arm})
        entry = {"file": path.name, "sha256": _sha256(path), "remaining": report["remaining"],
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


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


@torch.no_grad()
def imagefolder_accuracy(model, loader, device, max_images: int | None = None) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device):
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
            with _autocast(device):
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
    from lthvp.ticketfile import load_ticket_file

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


# ----------------------------------------------------------------------------------------------
# Target datasets

GTSRB_CLASSES = [
    "Speed limit (20km/h)", "Speed limit (30km/h)", "Speed limit (50km/h)", "Speed limit (60km/h)",
    "Speed limit (70km/h)", "Speed limit (80km/h)", "End of speed limit (80km/h)", "Speed limit (100km/h)",
    "Speed limit (120km/h)", "No passing", "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection", "Priority road", "Yield", "Stop", "No vehicles",
    "Vehicles over 3.5 metric tons prohibited", "No entry", "General caution", "Dangerous curve to the left",
    "Dangerous curve to the right", "Double curve", "Bumpy road", "Slippery road", "Road narrows on the right",
    "Road work", "Traffic signals", "Pedestrians", "Children crossing", "Bicycles crossing", "Beware of ice/snow",
    "Wild animals crossing", "End of all speed and passing limits", "Turn right ahead", "Turn left ahead",
    "Ahead only", "Go straight or right", "Go straight or left", "Keep right", "Keep left",
    "Roundabout mandatory", "End of no passing", "End of no passing by vehicles over 3.5 metric tons"]


@dataclass(frozen=True)
class PaperDataset:
    """How to get one target set from torchvision: split kwargs per role, storage size, names."""

    tv_class: str
    size: int  # storage (and VP) size; LP at 224 upsamples from it
    train: dict
    test: dict | None  # None: no official split (EuroSAT) -> seeded stratified test hold-out
    val: dict | None = None  # official validation split where one exists
    classes: tuple | None = None


PAPER_DATASETS: dict[str, PaperDataset] = {
    "cifar10": PaperDataset("CIFAR10", 32, {"train": True}, {"train": False}),
    "cifar100": PaperDataset("CIFAR100", 32, {"train": True}, {"train": False}),
    "svhn": PaperDataset("SVHN", 32, {"split": "train"}, {"split": "test"}, classes=tuple(str(i) for i in range(10))),
    "gtsrb": PaperDataset("GTSRB", 32, {"split": "train"}, {"split": "test"}, classes=tuple(GTSRB_CLASSES)),
    "flowers102": PaperDataset("Flowers102", 128, {"split": "train"}, {"split": "test"}, {"split": "val"}),
    "dtd": PaperDataset("DTD", 128, {"split": "train"}, {"split": "test"}, {"split": "val"}),
    "oxford_pets": PaperDataset("OxfordIIITPet", 128, {"split": "trainval"}, {"split": "test"}),
    "eurosat": PaperDataset("EuroSAT", 128, {}, None),
    "food101": PaperDataset("Food101", 128, {"split": "train"}, {"split": "test"}),
}
EUROSAT_TEST_FRACTION = 0.3  # CoOp-like 30% test, then 10% of the rest for validation
VAL_FRACTION = 0.1


class ResizeToArray:
    """PIL image -> (size, size, 3) uint8 array (PIL's antialiased bilinear); picklable for workers."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img):
        from PIL import Image

        img = img.convert("RGB")
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())


def _tv_dataset(spec: PaperDataset, kwargs: dict, root: Path, download: bool, transform=None):
    import torchvision

    cls = getattr(torchvision.datasets, spec.tv_class)
    try:
        return cls(str(root), download=download, transform=transform, **kwargs)
    except (RuntimeError, FileNotFoundError) as err:  # torchvision: "Dataset not found ... download=True"
        raise DataMissingError(
            f"{spec.tv_class} not found under {root} ({err}). Download it with --download (or LTHVP_DOWNLOAD=1) "
            f"on a machine with network access, or copy torchvision's {spec.tv_class} files into {root} "
            "(data root: --data-root / LTHVP_DATA).") from None


def _decode(ds, size: int, num_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size, 3) uint8 + labels. CIFAR/SVHN already hold 32 px arrays; the rest are
    decoded image by image (in worker processes) through ResizeToArray."""
    if ds.transform is None:
        x = np.asarray(ds.data)
        x = x if x.shape[-1] == 3 else x.transpose(0, 2, 3, 1)  # CIFAR (N,H,W,3); SVHN (N,3,H,W)
        if x.shape[1:3] != (size, size):
            raise ValueError(f"expected {size} px arrays, got {x.shape}")
        y = np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels)
        return np.ascontiguousarray(x), y.astype(np.int64)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=num_workers, shuffle=False)
    xs, ys = [], []
    for x, y in loader:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def _cache_path(root: Path, name: str, size: int) -> Path:
    return root / "lthvp_decoded" / f"{name}_{size}.npz"


def _to_split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y).long())


def decode_paper_dataset(name: str, root: Path, download: bool, num_workers: int | None = None) -> dict:
    """Decode + resize every split once and cache it as NPZ (uint8, no pickles) under the root."""
    spec = PAPER_DATASETS[name]
    cache = _cache_path(root, name, spec.size)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    workers = num_workers if num_workers is not None else min(8, os.cpu_count() or 1)
    tf = None if spec.tv_class in ("CIFAR10", "CIFAR100", "SVHN") else ResizeToArray(spec.size)
    roles = {"train": spec.train, "test": spec.test, "val": spec.val}
    arrays, classes = {}, None
    for role, kwargs in roles.items():
        if kwargs is None:
            continue
        ds = _tv_dataset(spec, kwargs, root, download, tf)
        classes = classes or list(spec.classes or getattr(ds, "classes", []) or [])
        arrays[f"x_{role}"], arrays[f"y_{role}"] = _decode(ds, spec.size, workers)
    if not classes:
        classes = [str(i) for i in range(int(arrays["y_train"].max()) + 1)]
    arrays["classes"] = np.array(classes)
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, cache)
    return arrays


def build_splits(name: str, arrays: Mapping[str, np.ndarray]) -> TargetData:
    """Official splits where they exist; otherwise seeded stratified hold-outs (test first, then
    validation from what remains), so no test image is ever a training image."""
    x, y = arrays["x_train"], arrays["y_train"]
    if "x_test" in arrays:
        tx, ty = arrays["x_test"], arrays["y_test"]
    else:
        rest, test = stratified_holdout(y, EUROSAT_TEST_FRACTION, SPLIT_SEED)
        tx, ty, x, y = x[test], y[test], x[rest], y[rest]
    if "x_val" in arrays:
        vx, vy = arrays["x_val"], arrays["y_val"]
    else:
        keep, held = stratified_holdout(y, VAL_FRACTION, SPLIT_SEED + 1)
        vx, vy, x, y = x[held], y[held], x[keep], y[keep]
    classes = [str(c) for c in arrays["classes"]]
    return TargetData(name, classes, _to_split(x, y), _to_split(vx, vy), _to_split(tx, ty))


def paper_loader(name: str):
    def load(root: Path, download: bool) -> TargetData:
        return build_splits(name, decode_paper_dataset(name, Path(root), download))

    return load


def register_datasets(override: bool = False) -> None:
    """Add the paper targets to lthvp.data.DATASETS. CIFAR-10 and SVHN are already registered
    (same splits at 32 px), so existing entries are kept unless ``override``."""
    for name, spec in PAPER_DATASETS.items():
        if override or name not in DATASETS:
            DATASETS[name] = DatasetSpec(paper_loader(name), spec.size, False)


register_datasets()


def vp_image_size(dataset: str) -> int:
    return PAPER_DATASETS[dataset].size if dataset in PAPER_DATASETS else 128


# ----------------------------------------------------------------------------------------------
# CLI


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parse_levels(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def _parse_import(items: list[str]):
    files = {}
    listed = []
    for item in items:
        level, sep, rest = item.partition("=")
        if sep and level.isdigit():
            path, _, mask = rest.partition(",")
            files[int(level)] = (path, mask or None)
        else:
            path, _, mask = item.partition(",")
            listed.append((path, mask or None))
    if files and listed:
        raise SystemExit("give every ticket as LEVEL=PATH[,MASK] or none of them")
    return files or listed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lthvp.paper", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(q):
        q.add_argument("--arch", default="resnet50", choices=sorted(PRETRAINED))
        q.add_argument("--out", type=Path, default=DEFAULT_FAMILY_DIR, help="family directory")

    def pruning(q):
        q.add_argument("--weights", type=Path, default=None, help="ImageNet weights file (default: torchvision cache)")
        q.add_argument("--download", action="store_true", help="allow torchvision to download the weights")
        q.add_argument("--prune-stem", action="store_true", help="also prune conv1 (OpenLTH); default keeps it dense")
        q.add_argument("--prune-head", action="store_true", help="also prune fc (OpenLTH); default keeps it dense")

    q = sub.add_parser("one-shot", help="one-shot global magnitude pruning of the pre-trained weights")
    common(q)
    pruning(q)
    q.add_argument("--levels", default="0-10", help="e.g. 0-10 or 0,3,6")
    q.add_argument("--random-levels", default="", help="also write random-pruning baselines at these levels")

    q = sub.add_parser("import", help="import external tickets (CV_LTH, OpenLTH, Misra, zero-weight, lthvp)")
    common(q)
    q.add_argument("tickets", nargs="+", help="PATH[,MASK] or LEVEL=PATH[,MASK]")

    q = sub.add_parser("imp", help="IMP with rewinding to the pre-trained weights on an ImageFolder")
    common(q)
    pruning(q)
    q.add_argument("--imagefolder", type=Path, required=True)
    q.add_argument("--val-folder", type=Path, default=None)
    q.add_argument("--levels", type=int, default=10)
    q.add_argument("--epochs", type=int, default=10)
    q.add_argument("--lr", type=float, default=1e-4)
    q.add_argument("--batch-size", type=int, default=256)
    q.add_argument("--max-steps", type=int, default=None)
    q.add_argument("--workers", type=int, default=8)
    q.add_argument("--device", default=None)

    q = sub.add_parser("prepare-data", help="download (if allowed) and decode a target dataset once")
    q.add_argument("datasets", nargs="+", choices=sorted(PAPER_DATASETS))
    q.add_argument("--data-root", type=Path, default=None)
    q.add_argument("--download", action="store_true")
    return p


def _ignore(args) -> tuple:
    return tuple(n for n, prune in (("conv1.weight", args.prune_stem), ("fc.weight", args.prune_head)) if not prune)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "one-shot":
            rl = _parse_levels(args.random_levels) if args.random_levels else ()
            info = one_shot_family(args.weights, _parse_levels(args.levels), args.out, args.arch, _ignore(args), rl,
                                   args.download, _say)
        elif args.cmd == "import":
            info = import_family(_parse_import(args.tickets), args.out, args.arch, _say)
        elif args.cmd == "imp":
            recipe = IMPRecipe(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_steps=args.max_steps,
                               ignore=_ignore(args))
            info = imp_family_imagefolder(args.weights, args.imagefolder, args.out, args.arch, args.levels, recipe,
                                          args.val_folder, num_workers=args.workers, device=args.device,
                                          download=args.download, progress=_say)
        else:
            root = args.data_root or data_root()
            for name in args.datasets:
                d = build_splits(name, decode_paper_dataset(name, root, args.download))
                _say(f"{name}: {len(d.train)} train / {len(d.val)} val / {len(d.test)} test, {d.num_classes} classes")
            return 0
    except (DataMissingError, FileNotFoundError, ValueError) as err:
        _say(f"error: {err}")
        return 2
    summary = {L: e["remaining"] for L, e in sorted(info["levels"].items(), key=lambda kv: int(kv[0]))}
    print(json.dumps({"family": str(args.out), "builder": info["builder"], "remaining": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
