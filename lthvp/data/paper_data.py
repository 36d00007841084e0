"""Paper-scale target datasets registered into ``lthvp.data.datasets.DATASETS``: decoded and resized
once to a storage size (32 or 128), cached as NPZ under the data root, held as uint8 like every
other dataset; EuroSAT gets a seeded stratified test split.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from lthvp.data.datasets import (DATASETS, SPLIT_SEED, DatasetSpec, DataMissingError, Split, TargetData, stratified_holdout)


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
    """Add the paper targets to lthvp.data.datasets.DATASETS. CIFAR-10 and SVHN are already registered
    (same splits at 32 px), so existing entries are kept unless ``override``."""
    for name, spec in PAPER_DATASETS.items():
        if override or name not in DATASETS:
            DATASETS[name] = DatasetSpec(paper_loader(name))


register_datasets()
