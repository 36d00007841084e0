"""Ticket families on disk: one reader, one writer, one naming rule (mini and paper alike).

A family is a directory of per-level ticket files plus ``family.json`` (builder, settings,
per-level sha256, source accuracy, three-way sparsity, per-layer density). Besides the IMP
levels ("ticket") and the random arm, compression arms (one-shot magnitude pruning, L1 filter
pruning, int8/int4 weight quantization; built by :mod:`lthvp.tickets.arms`) are members of the
same family, addressed (arm, level) and sha256-checked exactly like IMP levels. The source seed
that trained it is the unit of replication: a preset's families live in
``<preset dir>/family_<seed>/``; the preset directory itself holds the legacy single family.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from lthvp.tickets.sparsity import Masks, assert_masked
from lthvp.tickets.ticketfile import file_sha256, load_ticket_file, save_ticket_file

FAMILY_FILE = "family.json"
# arm -> its table in family.json. The first two names are the shipped format and never change.
ARM_KEYS = {"ticket": "levels", "random": "random_levels", "oneshot": "oneshot_levels",
            "oneshot_noft": "oneshot_noft_levels", "structured": "structured_levels",
            "structured_noft": "structured_noft_levels", "quant8": "quant8_levels", "quant4": "quant4_levels"}


class FamilyError(ValueError):
    """A family or level is missing, tampered with, or was built with other settings."""


def arm_key(arm: str) -> str:
    """family.json's table for ``arm`` (a clear error for an unknown arm, not a KeyError)."""
    try:
        return ARM_KEYS[arm]
    except KeyError:
        raise ValueError(f"unknown arm {arm!r}; choose from {sorted(ARM_KEYS)}") from None


def level_file_name(level: int, arm: str = "ticket") -> str:
    """``level_3.safetensors`` (IMP), ``random_level_3.safetensors``, ``oneshot_level_3.safetensors``..."""
    arm_key(arm)
    return f"level_{level}.safetensors" if arm == "ticket" else f"{arm}_level_{level}.safetensors"


def random_arm_seed(family_seed: int, level: int) -> int:
    """The random arm's mask seed, shared by every builder (family seed 0 -> the level itself)."""
    return family_seed * 1000 + level


def family_dir(preset_dir: Path, family: int | None) -> Path:
    """``None``: the legacy single family in the preset directory; else ``family_<seed>/``."""
    return Path(preset_dir) if family is None else Path(preset_dir) / f"family_{int(family)}"


def family_seeds(preset_dir: Path) -> list[int]:
    """Seeds of the families under a preset directory that have a family.json."""
    out = []
    for d in Path(preset_dir).glob("family_*"):
        suffix = d.name.split("_", 1)[1]
        if suffix.isdigit() and (d / FAMILY_FILE).exists():
            out.append(int(suffix))
    return sorted(out)


class TicketFamily:
    """Reads a family; every level is checked against its recorded sha256 before use."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    @property
    def info(self) -> dict:
        path = self.directory / FAMILY_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"no ticket family at {self.directory}: run `python -m lthvp tickets --preset <name>` to build it")
        try:
            return json.loads(path.read_text())
        except ValueError as err:
            raise FamilyError(f"{path} is not valid JSON ({err})") from None

    def level_path(self, level: int, arm: str = "ticket") -> Path:
        return self.directory / level_file_name(level, arm)

    def levels(self, arm: str = "ticket") -> list[int]:
        """Levels recorded in family.json whose file exists."""
        rows = self.info.get(arm_key(arm)) or {}
        return sorted(int(lv) for lv in rows if self.level_path(int(lv), arm).exists())

    def built(self) -> dict:
        """What a user can run: ``{'ticket': levels, 'random': levels, 'remaining': {level: fraction}}``
        (IMP levels' remaining fraction of all prunable weights); empty lists when nothing is built."""
        try:
            info = self.info  # read once: the page asks this of every family on every rerun
        except (OSError, ValueError):
            return {"ticket": [], "random": [], "remaining": {}}
        rows = {arm: info.get(key) or {} for arm, key in ARM_KEYS.items()}
        out = {arm: sorted(int(lv) for lv in rows[arm] if self.level_path(int(lv), arm).exists()) for arm in ARM_KEYS}
        out["remaining"] = {lv: (rows["ticket"][str(lv)].get("remaining") or {}).get("all_prunable", 0.8 ** lv)
                            for lv in out["ticket"]}
        return out

    def entry(self, level: int, arm: str = "ticket") -> dict:
        rows = self.info.get(arm_key(arm)) or {}
        if str(level) not in rows or not self.level_path(level, arm).exists():
            built = ", ".join(str(lv) for lv in self.levels(arm)) or "none"
            hint = "" if arm in ("ticket", "random") else f"; build it with `python -m lthvp tickets --arm {arm} ...`"
            raise FileNotFoundError(f"{arm} level {level} is not in the family at {self.directory} (built: {built}){hint}")
        return rows[str(level)]

    def verified_path(self, level: int, arm: str = "ticket") -> Path:
        """The level's file, after comparing its sha256 with family.json (tampering is an error)."""
        entry, path = self.entry(level, arm), self.level_path(level, arm)
        digest = file_sha256(path)
        if digest != entry.get("sha256"):
            raise FamilyError(f"{path} does not match the sha256 in {FAMILY_FILE} "
                              f"({digest[:12]} != {str(entry.get('sha256'))[:12]}): the file was changed; rebuild it")
        return path

    def load(self, level: int, arm: str = "ticket"):
        model, masks, _ = load_ticket_file(self.verified_path(level, arm))
        return model, masks

    def ticket_id(self, level: int, arm: str = "ticket") -> str:
        """Content identity of one level (feature-cache key): the file's recorded digest."""
        return f"{self.directory.name}:{arm}:{level}:{self.entry(level, arm)['sha256']}"


class FamilyWriter(TicketFamily):
    """Writes levels and family.json atomically; refuses to mix builders or settings."""

    def __init__(self, directory: str | Path, header: dict, settings: dict, report=None):
        super().__init__(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.report = report  # callable(info) -> markdown, written as REPORT.md on every save
        path = self.directory / FAMILY_FILE
        if path.exists():
            self._info = json.loads(path.read_text())
            if self._info.get("settings") != settings or self._info.get("builder") != header.get("builder"):
                raise FamilyError(f"{self.directory} holds a family built by {self._info.get('builder')} with other "
                                  f"settings ({self._info.get('settings')}); use another directory")
        else:
            self._info = {**header, "settings": settings, "levels": {}, "random_levels": {}}

    @classmethod
    def extend(cls, directory: str | Path, report=None) -> "FamilyWriter":
        """Open an existing family (any builder) to add members of other arms: its settings are
        taken as they are, since adding an arm never changes how the IMP levels were built."""
        info = TicketFamily(directory).info
        return cls(directory, {"builder": info.get("builder")}, info.get("settings"), report)

    def arm_settings(self, arm: str, settings: dict) -> None:
        """Record how ``arm``'s members are built (``arm_settings`` in family.json); refuse to add
        members built another way to an arm that already has some (no mixed recipes in one arm)."""
        arm_key(arm)
        settings = json.loads(json.dumps(settings, sort_keys=True))  # as family.json will hold it
        known = self._info.setdefault("arm_settings", {})
        if arm in known and known[arm] != settings and self._info.get(arm_key(arm)):
            raise FamilyError(f"the {arm} arm in {self.directory} was built with other settings ({known[arm]}); "
                              f"use another family directory or delete that arm's files and entries")
        known[arm] = settings

    @property
    def info(self) -> dict:
        return self._info

    def has(self, level: int, arm: str = "ticket") -> bool:
        return str(level) in (self._info.get(arm_key(arm)) or {}) and self.level_path(level, arm).exists()

    def save_info(self) -> None:
        path = self.directory / FAMILY_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._info, indent=1, sort_keys=True))
        tmp.replace(path)
        if self.report:
            (self.directory / "REPORT.md").write_text(self.report(self._info))

    def write(self, level: int, model: nn.Module, masks: Masks, arch: str, arm: str = "ticket",
              sparsity: dict | None = None, **extra) -> dict:
        """Save one level (model must already carry its mask) and record it in family.json."""
        model = model.to("cpu", memory_format=torch.contiguous_format).float()
        assert_masked(model, masks)
        path = self.level_path(level, arm)
        save_ticket_file(path, model, masks, arch, {"level": level, "arm": arm})
        entry = {"file": path.name, "sha256": file_sha256(path), **(sparsity or {}), **extra}
        self._info.setdefault(arm_key(arm), {})[str(level)] = entry
        self.save_info()
        return entry
