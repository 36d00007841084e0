"""Dataset registry, offline sources, seeded splits and N-shot sampling.

Images are held as uint8 tensors (N, 3, H, W) so small datasets stay resident and a run needs
no DataLoader. Every dataset yields fixed train/val/test splits: the test split is the
official one (or a seeded stratified hold-out where none exists) and the validation split is
held out of the training data; runs sample their N shots from the train split only.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from lthvp.data.catalog import FASHION_CLASSES  # noqa: F401  (re-exported)
from lthvp.results.config import FULL

SPLIT_SEED = 12345  # fixed: the train/val/test partition never depends on a run's seed
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


class DataMissingError(RuntimeError):
    """A dataset is not on disk and cannot be downloaded; the message says what to do."""


@dataclass
class Split:
    x: torch.Tensor  # uint8 (N, 3, H, W)
    y: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx) -> "Split":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Split(self.x[idx], self.y[idx])


@dataclass
class TargetData:
    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def data_root() -> Path:
    return Path(os.environ.get("LTHVP_DATA", Path.cwd() / "data"))


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with ``fraction`` of every class held out."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_held = max(1, int(round(fraction * len(idx))))
        held.append(idx[:n_held])
        kept.append(idx[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def sample_shots(labels: torch.Tensor | np.ndarray, shots: int | str, seed: int) -> np.ndarray:
    """Seeded, stratified choice of ``shots`` indices per class ('full' = every index)."""
    labels = np.asarray(labels)
    if shots == FULL:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < shots:
            raise ValueError(f"{shots} shots requested but class {c} has only {len(idx)} training images")
        chosen.append(rng.choice(idx, size=shots, replace=False))
    return np.sort(np.concatenate(chosen))


def sample_fewshot_val(labels, train_idx, per_class: int, seed: int) -> np.ndarray:
    """k validation images per class from the training split, disjoint from ``train_idx``
    (few-shot validation that is few-shot); its own seeded stream, apart from the shots'."""
    labels = np.asarray(labels)
    rest = np.setdiff1d(np.arange(len(labels)), np.asarray(train_idx))
    rng = np.random.default_rng([seed, 1])
    chosen = []
    for c in np.unique(labels):
        idx = rest[labels[rest] == c]
        if len(idx) < per_class:
            raise ValueError(f"{per_class} validation images per class requested but class {c} has only "
                             f"{len(idx)} left after the training shots")
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def to_uint8_rgb(images: np.ndarray) -> torch.Tensor:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, 3, H, W) uint8."""
    t = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))
    if t.ndim == 3:
        t = t[:, None].expand(-1, 3, -1, -1)
    elif t.ndim == 4 and t.shape[-1] in (1, 3):
        t = t.permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
    else:
        raise ValueError(f"unexpected image array shape {tuple(t.shape)}")
    return t.contiguous()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 or float images -> float32 in [0, 1] at size x size (bilinear, antialiased)."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)


def _with_val(name, classes, train_x, train_y, test_x, test_y, val_fraction=0.1) -> TargetData:
    keep, held = stratified_holdout(np.asarray(train_y), val_fraction, SPLIT_SEED)
    train = Split(to_uint8_rgb(train_x), torch.as_tensor(np.array(train_y, dtype=np.int64)))
    return TargetData(name, classes, train.subset(keep), train.subset(held),
                      Split(to_uint8_rgb(test_x), torch.as_tensor(np.array(test_y, dtype=np.int64))))


def load_digits_data(root: Path, download: bool) -> TargetData:
    """sklearn digits (1,797 8x8 images, shipped with scikit-learn): no official split, so a
    seeded stratified 30% test hold-out, then 15% of the rest for validation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    rest, test = stratified_holdout(d.target, 0.30, SPLIT_SEED)
    return _with_val("digits", [str(i) for i in range(10)], images[rest], d.target[rest],
                     images[test], d.target[test], val_fraction=0.15)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)




def _find_idx_files(dirs: list[Path]) -> Path | None:
    for d in dirs:
        if all((d / f).exists() or (d / f"{f}.gz").exists() for f in
               ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
            return d
    return None


def load_fashion_mnist(root: Path, download: bool) -> TargetData:
    """Fashion-MNIST from the Debian package, ``<root>/FashionMNIST/raw``, or a torchvision download."""
    candidates = [DEBIAN_FASHION, root / "FashionMNIST" / "raw"]
    found = _find_idx_files(candidates)
    if found is None and download:
        import torchvision

        torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
        found = _find_idx_files(candidates)
    if found is None:
        raise DataMissingError(
            "Fashion-MNIST not found. Install the Debian package (apt-get install dataset-fashion-mnist, "
            f"files under {DEBIAN_FASHION}) or allow a download into {root / 'FashionMNIST'} "
            "(--download / LTHVP_DOWNLOAD=1).")

    def read(stem):
        p = found / stem
        return _read_idx(p if p.exists() else found / f"{stem}.gz")

    return _with_val("fashion_mnist", FASHION_CLASSES, read("train-images-idx3-ubyte"), read("train-labels-idx1-ubyte"),
                     read("t10k-images-idx3-ubyte"), read("t10k-labels-idx1-ubyte"), val_fraction=0.1)


def load_fashion_mnist_1k(root: Path, download: bool) -> TargetData:
    """Fashion-MNIST as a v3 target: the same train/val splits, and a fixed stratified test subset
    of 1,000 images (100 per class, seed 12345), because every stored run keeps its per-sample
    test probabilities and the full 10,000 would make the shipped bundle too large."""
    full = load_fashion_mnist(root, download)
    _, keep = stratified_holdout(full.test.y.numpy(), 0.1, SPLIT_SEED)
    return TargetData("fashion_mnist_1k", full.classes, full.train, full.val, full.test.subset(keep))


def _torchvision_loader(cls_name: str, split_kw: Callable[[bool], dict], classes: list[str] | None = None):
    def load(root: Path, download: bool) -> TargetData:
        import torchvision

        cls = getattr(torchvision.datasets, cls_name)
        try:
            tr = cls(str(root), download=download, **split_kw(True))
            te = cls(str(root), download=download, **split_kw(False))
        except RuntimeError as err:  # torchvision: "Dataset not found. You can use download=True ..."
            raise DataMissingError(
                f"{cls_name} not found under {root}. Download it with --download (or LTHVP_DOWNLOAD=1) on a "
                f"machine with network access, or copy torchvision's {cls_name} files there ({err}).") from None

        def arrays(ds):
            data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
            if data.ndim == 4 and data.shape[1] == 3:  # SVHN stores (N, 3, H, W)
                data = data.transpose(0, 2, 3, 1)
            labels = np.asarray(getattr(ds, "targets", None) if hasattr(ds, "targets") else ds.labels)
            return data, labels

        (xtr, ytr), (xte, yte) = arrays(tr), arrays(te)
        names = classes or list(getattr(tr, "classes", [str(i) for i in range(int(ytr.max()) + 1)]))
        return _with_val(cls_name.lower(), names, xtr, ytr, xte, yte)

    return load


@dataclass(frozen=True)
class DatasetSpec:
    load: Callable[[Path, bool], TargetData]  # (data root, download allowed) -> fixed splits


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(load_digits_data),
    "fashion_mnist": DatasetSpec(load_fashion_mnist),
    "fashion_mnist_1k": DatasetSpec(load_fashion_mnist_1k),
    "mnist": DatasetSpec(_torchvision_loader("MNIST", lambda t: {"train": t})),
    "kmnist": DatasetSpec(_torchvision_loader("KMNIST", lambda t: {"train": t})),
    "cifar10": DatasetSpec(_torchvision_loader("CIFAR10", lambda t: {"train": t})),
    "svhn": DatasetSpec(_torchvision_loader("SVHN", lambda t: {"split": "train" if t else "test"},
                                            [str(i) for i in range(10)])),
}

_LOADED: dict[tuple[str, str], TargetData] = {}
# Modules that register more targets into DATASETS (plugins depend on this module, not the
# reverse); imported on first use so that this module never imports them at load time.
PLUGINS = ("lthvp.data.paper_data", "lthvp.data.sources")


def registered() -> dict[str, DatasetSpec]:
    """Every registered dataset, the plugins' included."""
    import importlib

    for module in PLUGINS:
        importlib.import_module(module)
    return DATASETS


def load_dataset(name: str, root: Path | None = None, download: bool | None = None) -> TargetData:
    """Load (and memoise in-process) a registered dataset's fixed splits."""
    if name not in registered():
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    root = Path(root) if root is not None else data_root()
    if download is None:
        download = os.environ.get("LTHVP_DOWNLOAD", "0") == "1"
    key = (name, str(root))
    if key not in _LOADED:
        _LOADED[key] = DATASETS[name].load(root, download)
    return _LOADED[key]

