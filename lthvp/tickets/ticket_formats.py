"""Import lottery tickets written by other tools, strictly.

Supported (docs/PAPER.md lists the sources of each format):

* ``prune``   torch.nn.utils.prune state dicts (``X.weight_orig`` + ``X.weight_mask``; CV_LTH),
              optionally wrapped in ``{'state_dict': ...}`` and/or prefixed ``module.``;
* ``openlth`` OpenLTH ``model_ep*_it*.pth`` (``model.`` prefix) with ``mask.pth`` beside it;
* ``checkpoint+mask`` a checkpoint plus a separate ``*_mask.pth`` (Misra ``resnet50_dyn4_{L}_*``);
* ``zeros``   a plain checkpoint whose exact zeros are the mask (SparseZoo style);
* ``lthvp``   LTHVP's own safetensors ticket file.

Every path ends in the same strict check: the state dict must name exactly the model's keys
with the model's shapes, and every mask must name a prunable weight of matching shape with
0/1 values. A mismatch raises ValueError listing the keys, so a ticket can never be loaded
silently into random weights. Files are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from lthvp.tickets.models import build_model, model_spec
from lthvp.tickets.sparsity import Masks, apply_masks, prunable_names

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
PREFIXES = ("module.", "model.")
TOLERATED_MISSING = ".num_batches_tracked"  # BN counters: absent from older checkpoints, unused in eval


def _read(path: Path) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # pickled classes, corrupt files: say so instead of unpickling
        raise ValueError(f"{path}: not loadable with torch.load(weights_only=True): {err}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def unwrap(obj: Mapping) -> tuple[dict, dict | None]:
    """Return (tensor dict, embedded mask dict or None) from a raw or wrapped checkpoint."""
    embedded = obj.get("mask") if isinstance(obj.get("mask"), Mapping) else None
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"checkpoint entries are not tensors (unknown wrapper?): {bad[:8]}")
    return dict(obj), (dict(embedded) if embedded is not None else None)


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel ``module.`` and OpenLTH ``model.`` prefixes (in any nesting)."""
    out = {}
    for k, v in state.items():
        name = k
        while name.startswith(PREFIXES):
            name = name.split(".", 1)[1]
        if name in out:
            raise ValueError(f"keys collide after stripping prefixes: {k!r} -> {name!r}")
        out[name] = v
    return out


def _mask_name(key: str) -> str:
    return key[: -len("_mask")] if key.endswith(".weight_mask") else key


def sibling_mask(path: Path) -> Path | None:
    """OpenLTH keeps ``mask.pth`` beside the weights; Misra names it ``<stem>_mask.pth``."""
    stem = re.sub(r"_checkpoint$", "", path.stem)
    for cand in (path.with_name(f"{stem}_mask.pth"), path.with_name("mask.pth")):
        if cand.exists() and cand != path:
            return cand
    return None


def _num_classes(state: Mapping[str, torch.Tensor], head: str) -> int | None:
    for key in (head, head + "_orig"):
        if key in state and state[key].ndim == 2:
            return int(state[key].shape[0])
    return None


def _validate(model: nn.Module, state: dict, masks: dict, source: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(TOLERATED_MISSING)]
    extra = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    prunable = set(prunable_names(model))
    bad_masks = [k for k in masks if k not in prunable]
    mask_shapes = [f"{k} {tuple(m.shape)} != {tuple(expected[k].shape)}" for k, m in masks.items()
                   if k in prunable and m.shape != expected[k].shape]
    not_binary = [k for k, m in masks.items() if k in prunable and bool(((m != 0) & (m != 1)).any())]
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", extra), ("wrong shapes", shapes),
                        ("masks for non-prunable or unknown weights", bad_masks), ("wrong mask shapes", mask_shapes),
                        ("masks with values other than 0/1", not_binary)):
        if keys:
            more = f" (+{len(keys) - 10} more)" if len(keys) > 10 else ""
            problems.append(f"{label}: {keys[:10]}{more}")
    if problems:
        raise ValueError(f"{source} does not match {type(model).__name__}: " + "; ".join(problems))


def detect_format(path: Path, mask_path: Path | None = None) -> str:
    from lthvp.tickets.ticketfile import is_ticket_file

    if path.suffix == ".safetensors" or is_ticket_file(path):
        return "lthvp"
    state, embedded = unwrap(_read(path))
    if any(k.endswith(".weight_orig") for k in state) or embedded:
        return "prune"
    found = mask_path or sibling_mask(path)
    if found is not None:
        return "openlth" if found.name == "mask.pth" else "checkpoint+mask"
    return "zeros"


def load_any(path: str | Path, mask_path: str | Path | None = None, arch: str = "resnet50") -> tuple[nn.Module, Masks, str]:
    """Load a ticket in any supported format -> (model with masks applied, masks, format name)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ticket file not found: {path}")
    mask_path = Path(mask_path) if mask_path is not None else None
    if mask_path is not None and not mask_path.exists():
        raise FileNotFoundError(f"mask file not found: {mask_path}")
    fmt = detect_format(path, mask_path)
    if fmt == "lthvp":
        from lthvp.tickets.ticketfile import load_ticket_file

        model, masks, _ = load_ticket_file(path)
        return model, masks, fmt
    spec = model_spec(arch)
    state, embedded = unwrap(_read(path))
    state = strip_prefixes(state)
    masks: dict[str, torch.Tensor] = {}
    if fmt == "prune":
        for key in [k for k in state if k.endswith(".weight_orig")]:
            name = key[: -len("_orig")]
            if name + "_mask" not in state:
                raise ValueError(f"{path}: {key} has no matching {name}_mask")
            masks[name] = state.pop(name + "_mask").float()
            state[name] = state.pop(key)
        if not masks and embedded:  # CV_LTH checkpoint with the mask stored beside the state dict
            masks = {_mask_name(k): v.float() for k, v in strip_prefixes(embedded).items()}
        orphans = [k for k in state if k.endswith(".weight_mask")]
        if orphans:
            raise ValueError(f"{path}: masks without weight_orig: {orphans[:10]}")
    elif fmt in ("openlth", "checkpoint+mask"):
        mfile = mask_path or sibling_mask(path)
        raw, _ = unwrap(_read(mfile))
        masks = {_mask_name(k): v.float() for k, v in strip_prefixes(raw).items()}
    model = build_model(arch, _num_classes(state, spec.head) or 1000)
    if fmt == "zeros":
        masks = zero_masks(model, state, spec.stem, spec.head)
    _validate(model, state, masks, f"{path}" + (f" (+ {mask_path})" if mask_path else ""))
    missing_ok = [k for k in model.state_dict() if k not in state]
    model.load_state_dict(state, strict=not missing_ok)
    apply_masks(model, masks)
    return model, masks, fmt


def zero_masks(model: nn.Module, state: Mapping[str, torch.Tensor], stem: str, head: str) -> Masks:
    """Mask = weight != 0 over the prunable weights. The stem and head count as unpruned (no
    mask entry) when they hold no zeros, the CV_LTH convention, so reports don't claim they
    were pruned."""
    masks = {}
    for name in prunable_names(model):
        if name not in state:
            continue  # reported as missing by the strict check
        m = (state[name] != 0).float()
        if name in (stem, head) and bool(m.all()):
            continue
        masks[name] = m
    return masks


def load_ticket(path, mask_path=None, arch: str = "resnet50") -> tuple[nn.Module, Masks]:
    """Any supported ticket format -> (model with the masked weights applied, masks 1 keep / 0 pruned).

    Formats: torch.nn.utils.prune ``weight_orig``/``weight_mask`` (CV_LTH), OpenLTH (``mask.pth``
    beside the weights), checkpoint + ``*_mask.pth`` (Misra), plain checkpoints whose zeros are
    the mask, and LTHVP ticket files. Raises ValueError naming the keys on any mismatch.
    """
    model, masks, _ = load_any(path, mask_path, arch)
    return model, masks
