"""Presets: the source model, ticket family and training defaults a run is resolved against."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lthvp.config import FULL, RunConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class IMPSettings:
    """Source training recipe for one IMP level (OpenLTH style, sized for 2 CPU cores)."""

    source_dataset: str = "fashion_mnist"
    train_images: int = 10000  # stratified subset of the source training split
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    rewind_step: int = 40  # rewind point: weights after this many steps of level-0 training
    levels: int = 8  # levels 0..levels
    prune_fraction: float = 0.2
    ignore: tuple[str, ...] = ()
    random_levels: tuple[int, ...] = (2, 4, 6, 8)
    seed: int = 0


@dataclass(frozen=True)
class Preset:
    name: str
    arch: str
    family_dir: Path
    canvas: int  # the source model's input size
    vp_epochs: dict = field(default_factory=dict)  # shots -> epochs
    lp_epochs: int = 60
    vp_lr: float = 0.01
    lp_lr: float = 0.01
    vp_batch: dict = field(default_factory=dict)  # shots -> batch size
    lp_batch: int = 128
    imp: IMPSettings = IMPSettings()
    image_sizes: dict = field(default_factory=dict)  # dataset -> VP image size

    def image_size(self, dataset: str) -> int:
        return self.image_sizes.get(dataset, self.image_sizes.get("*", self.canvas))


MINI = Preset(
    name="mini", arch="resnet20", family_dir=REPO_ROOT / "tickets" / "mini", canvas=32,
    vp_epochs={1: 30, 2: 30, 5: 25, 10: 25, FULL: 10},
    vp_batch={1: 16, 2: 16, 5: 32, 10: 32, FULL: 128},
    lp_epochs=60, lp_batch=64, image_sizes={"*": 24},
)

PRESETS: dict[str, Preset] = {"mini": MINI}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None


def _by_shots(table: dict, shots):
    if shots in table:
        return table[shots]
    numeric = sorted(k for k in table if k != FULL)
    return table[max([k for k in numeric if k <= shots] or numeric[:1])]


def resolve(cfg: RunConfig) -> RunConfig:
    """Fill the preset's defaults so equal runs share one hash."""
    p = get_preset(cfg.preset)
    if cfg.method == "vp":
        epochs = cfg.epochs or _by_shots(p.vp_epochs, cfg.shots)
        batch = cfg.batch_size or _by_shots(p.vp_batch, cfg.shots)
        lr = cfg.lr or p.vp_lr
        image_size = cfg.image_size or p.image_size(cfg.dataset)
        return cfg.replace(epochs=epochs, batch_size=batch, lr=lr, image_size=image_size, lp_input="full")
    image_size = (cfg.image_size or p.image_size(cfg.dataset)) if cfg.lp_input == "matched" else p.canvas
    return cfg.replace(epochs=cfg.epochs or p.lp_epochs, batch_size=cfg.batch_size or p.lp_batch,
                       lr=cfg.lr or p.lp_lr, image_size=image_size, mapping="ilm", assignment="greedy")


# Paper preset: torchvision ImageNet ResNet-50, tickets built by `python -m lthvp.paper`
# (import / one-shot / imp) into tickets/paper; VP image 32 (CIFAR/SVHN/GTSRB) or 128 in a 224 canvas.
# Batch sizes follow Misra et al. (tied to shots); VP epochs follow their 100 (ILM-VP used 200).
PRESETS["paper"] = Preset(
    name="paper", arch="resnet50", family_dir=REPO_ROOT / "tickets" / "paper", canvas=224,
    vp_epochs={1: 100, 2: 100, 5: 100, 10: 100, FULL: 50},
    vp_batch={1: 8, 2: 16, 5: 32, 10: 32, FULL: 256},
    lp_epochs=100, lp_lr=0.01, lp_batch=256, vp_lr=0.01,
    imp=IMPSettings(source_dataset="imagenet-imagefolder", ignore=("conv1.weight", "fc.weight")),
    image_sizes={"cifar10": 32, "cifar100": 32, "svhn": 32, "gtsrb": 32, "*": 128},
)
