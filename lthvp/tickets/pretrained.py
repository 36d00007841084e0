"""ImageNet-pre-trained torchvision weights: a local file (strict, weights_only) or a torchvision
download when allowed; offline without the file, a message naming the file and the folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from lthvp.data.datasets import DataMissingError
from lthvp.tickets.models import build_model
from lthvp.tickets.ticket_formats import _validate, strip_prefixes, unwrap


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


