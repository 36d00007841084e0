"""Source model registry: CIFAR-style ResNet-20 (mini preset) and torchvision ResNet-18/50.

Every model exposes ``features(x)`` (penultimate activations, used by linear probing),
``fc`` (the source classifier, used by visual prompting) and ``input_size``/``mean``/``std``
(the source preprocessing that visual prompting applies after the prompt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FASHION_MEAN = (0.2860, 0.2860, 0.2860)
FASHION_STD = (0.3530, 0.3530, 0.3530)
# the v3 many-class sources (lthvp.data.sources), white on black; one normalisation for both
# candidates, near their pooled training-image statistics (mean / SD: glyphs 0.073 / 0.217,
# fractals 0.077 / 0.157); fixed constants, since tickets are trained with them
SYNTH_MEAN = (0.0760, 0.0760, 0.0760)
SYNTH_STD = (0.1920, 0.1920, 0.1920)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: 3x3 stem, three stages of n blocks (16/32/64 channels)."""

    def __init__(self, depth: int = 20, num_classes: int = 10, widths=(16, 32, 64)):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, c_in = [], widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(c_in, w, 2 if (i > 0 and j == 0) else 1))
                c_in = w
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(widths[-1], num_classes)
        self.feature_dim = widths[-1]

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


def _torchvision_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    m = model
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    return torch.flatten(m.avgpool(x), 1)


def _torchvision_resnet(name: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int = 1000) -> nn.Module:
        import torchvision

        model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
        model.features = _torchvision_features.__get__(model)
        model.feature_dim = model.fc.in_features
        return model

    return build


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[int], nn.Module]
    input_size: int
    mean: tuple
    std: tuple
    stem: str  # name of the stem conv weight (reported separately in sparsity reports)
    head: str  # name of the classifier weight


MODELS: dict[str, ModelSpec] = {
    "resnet20": ModelSpec(lambda k=10: CifarResNet(20, k), 32, FASHION_MEAN, FASHION_STD, "conv1.weight", "fc.weight"),
    "resnet20_synth": ModelSpec(lambda k=128: CifarResNet(20, k), 32, SYNTH_MEAN, SYNTH_STD, "conv1.weight",
                                "fc.weight"),
    "resnet18": ModelSpec(_torchvision_resnet("resnet18"), 224, IMAGENET_MEAN, IMAGENET_STD, "conv1.weight", "fc.weight"),
    "resnet50": ModelSpec(_torchvision_resnet("resnet50"), 224, IMAGENET_MEAN, IMAGENET_STD, "conv1.weight", "fc.weight"),
}


def model_spec(arch: str) -> ModelSpec:
    try:
        return MODELS[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(MODELS)}") from None


def build_model(arch: str, num_classes: int | None = None) -> nn.Module:
    spec = model_spec(arch)
    return spec.build(num_classes) if num_classes is not None else spec.build()


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm statistics frozen) and no parameter gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def autocast_for(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA (tensor cores); on the CPU only when asked (a run whose config says
    ``precision="bf16"``): CPU runs stay fp32 by default so the shipped results reproduce exactly."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=device.type == "cuda" or (cpu_bf16 and device.type == "cpu"))


def to_device(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a model; on CUDA also use channels_last and let cuDNN pick its fastest kernels."""
    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model.to(memory_format=torch.channels_last)
    return model
