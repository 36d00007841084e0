"""Where a result came from: package versions, git commit, machine, time."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata

from lthvp.paths import REPO_ROOT

PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "diskcache", "safetensors", "streamlit", "plotly")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        here = REPO_ROOT  # git pathspecs below are relative to the repository root
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "lthvp"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        commit = out.stdout.strip()
        return (commit + ("-dirty" if dirty else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def _static() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "packages": versions, "platform": platform.platform(),
            "machine": platform.machine(), "processor": platform.processor() or None}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def provenance(device: str = "cpu") -> dict:
    import torch

    return {**_static(), "git_commit": git_commit(), "device": device, "torch_threads": torch.get_num_threads(),
            "command": " ".join(sys.argv), "created": now_iso()}
