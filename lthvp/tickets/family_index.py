"""A ticket family's index: family.json, the naming rule of its files, and the checks that a
level file is the one recorded, torch-free so the dashboard can list families without loading
torch into the server. :mod:`lthvp.tickets.families` adds loading and writing levels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FAMILY_FILE = "family.json"
# arm -> its table in family.json. The first two names are the shipped format and never change.
ARM_KEYS = {"ticket": "levels", "random": "random_levels", "control": "control_levels", "oneshot": "oneshot_levels",
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


class FamilyIndex:
    """Reads a family's index (family.json) and checks level files against it, without torch:
    the dashboard lists what is built through this; :class:`lthvp.tickets.families.TicketFamily`
    adds loading a level."""

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

    def ticket_id(self, level: int, arm: str = "ticket") -> str:
        """Content identity of one level (feature-cache key): the file's recorded digest."""
        return f"{self.directory.name}:{arm}:{level}:{self.entry(level, arm)['sha256']}"


def file_sha256(path: str | Path) -> str:
    """Content digest of a ticket file (recorded in family.json; keys the LP feature cache)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
