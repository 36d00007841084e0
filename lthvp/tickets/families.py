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

from lthvp.tickets.family_index import (ARM_KEYS, FAMILY_FILE, FamilyError, FamilyIndex,  # noqa: F401  (re-exported)
                                       arm_key, family_dir, family_seeds, file_sha256, level_file_name,
                                       random_arm_seed)
from lthvp.tickets.sparsity import Masks, assert_masked
from lthvp.tickets.ticketfile import load_ticket_file, save_ticket_file


def _only_extends(recorded: dict | None, settings: dict) -> bool:
    """True when ``settings`` differ from the recorded ones only by extending the family: a higher
    ``levels`` cap (deeper IMP levels follow the same recipe from the last built one) or random-arm
    levels appended to the recorded list (a random member depends only on its IMP level's counts
    and its own seed). Neither changes a built member."""
    if not isinstance(recorded, dict) or not isinstance(settings, dict) or recorded == settings:
        return False
    old_random, new_random = recorded.get("random_levels"), settings.get("random_levels")
    if old_random != new_random and not (isinstance(old_random, list) and isinstance(new_random, list)
                                         and new_random[:len(old_random)] == old_random):
        return False
    old_levels, new_levels = recorded.get("levels"), settings.get("levels")
    if old_levels != new_levels and not (isinstance(old_levels, int) and isinstance(new_levels, int)
                                         and new_levels > old_levels):
        return False
    return {**recorded, "random_levels": new_random, "levels": new_levels} == settings


class TicketFamily(FamilyIndex):
    """Reads a family; every level is checked against its recorded sha256 before use."""

    def load(self, level: int, arm: str = "ticket"):
        model, masks, _ = load_ticket_file(self.verified_path(level, arm))
        return model, masks


class FamilyWriter(TicketFamily):
    """Writes levels and family.json atomically; refuses to mix builders or settings."""

    def __init__(self, directory: str | Path, header: dict, settings: dict, report=None):
        super().__init__(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.report = report  # callable(info) -> markdown, written as REPORT.md on every save
        path = self.directory / FAMILY_FILE
        if path.exists():
            self._info = json.loads(path.read_text())
            if _only_extends(self._info.get("settings"), settings):
                self._info["settings"] = settings  # deeper levels or more random members; built ones stay
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
