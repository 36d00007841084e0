"""LTHVP's own ticket file: one safetensors file per level, lossless and compact.

Prunable weights are stored as their kept values plus a bit-packed mask (so a 16.8% ticket
costs about a sixth of a dense one); everything else (BatchNorm, biases) is stored dense.
Format v2 also compresses the kept values losslessly (bytes shuffled by significance, then
zlib: about 20% smaller for trained float32 weights); v1 files (raw values) still load.
Metadata carries the architecture and number of classes so a file loads on its own.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save

from lthvp.tickets.family_index import file_sha256  # noqa: F401  (re-exported: ticket files' digest)
from lthvp.tickets.models import build_model
from lthvp.tickets.sparsity import Masks, apply_masks

FORMAT = "lthvp-ticket-v2"
FORMATS = ("lthvp-ticket-v1", FORMAT)  # readable


def pack_values(values: torch.Tensor) -> torch.Tensor:
    """float32 values -> uint8 tensor: byte planes (all first bytes, then all second, ...) deflated."""
    import zlib

    planes = values.detach().cpu().float().contiguous().numpy().view(np.uint8).reshape(-1, 4).T.copy()
    return torch.from_numpy(np.frombuffer(zlib.compress(planes.tobytes(), 9), dtype=np.uint8).copy())


def unpack_values(packed: torch.Tensor, count: int, where: str) -> torch.Tensor:
    """Inverse of :func:`pack_values`; inflates at most the expected byte count (no zip bombs)."""
    import zlib

    d = zlib.decompressobj()
    try:
        raw = d.decompress(packed.numpy().tobytes(), max(1, 4 * count))  # 0 would mean "no limit"
    except zlib.error as err:
        raise ValueError(f"{where}: compressed values are corrupt ({err})") from None
    if len(raw) != 4 * count or d.unconsumed_tail or not d.eof:
        raise ValueError(f"{where}: compressed values hold a different number of weights than the mask")
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(4, count)
    return torch.from_numpy(planes.T.copy().view(np.float32).reshape(-1))


def save_ticket_file(path: str | Path, model: nn.Module, masks: Masks, arch: str, extra: dict | None = None) -> None:
    """Write atomically (temp file + rename) so an interrupted run never leaves a torn level."""
    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        if name in masks:
            keep = masks[name].flatten().bool().cpu()
            tensors[f"zvalues::{name}"] = pack_values(value.detach().flatten().cpu()[keep])
            tensors[f"mask::{name}"] = torch.from_numpy(np.packbits(keep.numpy().astype(np.uint8)))
        else:
            tensors[name] = value.detach().cpu().contiguous()
    meta = {"format": FORMAT, "arch": arch, "num_classes": str(model.fc.out_features),
            "extra": json.dumps(extra or {}, sort_keys=True)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(canonical_safetensors(save(tensors, metadata=meta)))
    os.replace(tmp, path)


def canonical_safetensors(data: bytes) -> bytes:
    """The same file with its header's metadata keys in sorted order. safetensors writes metadata in
    random order (upstream safetensors#584), so identical tickets got different sha256 digests; with
    this, saving the same weights and masks twice gives the same bytes (and the same ticket id)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the header stays 8-byte aligned
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


def is_ticket_file(path: str | Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("format") in FORMATS
    except Exception:  # not a safetensors file at all
        return False


def load_ticket_file(path: str | Path) -> tuple[nn.Module, Masks, dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") not in FORMATS:
        raise ValueError(f"{path} is not an LTHVP ticket file ({' or '.join(FORMATS)})")
    model = build_model(meta["arch"], int(meta["num_classes"]))
    tensors = load_file(str(path))
    state, masks = {}, {}
    expected = model.state_dict()
    for name, ref in expected.items():
        if f"mask::{name}" in tensors:
            bits = np.unpackbits(tensors[f"mask::{name}"].numpy())[: ref.numel()].astype(bool)
            keep = torch.from_numpy(bits)
            if f"zvalues::{name}" in tensors:
                values = unpack_values(tensors[f"zvalues::{name}"], int(keep.sum()), f"{path}: {name}")
            else:
                values = tensors[f"values::{name}"]
            if int(keep.sum()) != values.numel():
                raise ValueError(f"{path}: mask and values disagree for {name}")
            full = torch.zeros(ref.numel(), dtype=ref.dtype)
            full[keep] = values
            state[name] = full.view_as(ref)
            masks[name] = keep.view_as(ref).float()
        elif name in tensors:
            state[name] = tensors[name]
    missing = [n for n in expected if n not in state]
    known = set(expected) | {f"{kind}::{n}" for n in expected for kind in ("mask", "values", "zvalues")}
    extra = [n for n in tensors if n not in known]
    if missing or extra:
        raise ValueError(f"{path}: missing keys {missing[:5]}, unexpected keys {extra[:5]}")
    model.load_state_dict(state)
    apply_masks(model, masks)
    return model, masks, json.loads(meta.get("extra", "{}"))
