"""Run configuration: everything that determines a result, and its stable hash (the run's name)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

METHODS = ("vp", "lp")
MAPPINGS = ("ilm", "flm", "rlm")
ASSIGNMENTS = ("greedy", "hungarian")
ARMS = ("ticket", "random")
FULL = "full"


def parse_shots(value: int | str) -> int | str:
    """Shots are a positive int per class or the string 'full'."""
    if isinstance(value, str):
        if value.strip().lower() == FULL:
            return FULL
        value = int(value)
    if value < 1:
        raise ValueError(f"shots must be >= 1 or 'full', got {value}")
    return int(value)


@dataclass(frozen=True)
class RunConfig:
    """One transfer experiment: ticket (family, level, arm) x dataset x method x shots x seed.

    ``epochs``/``lr``/``image_size`` default to None = the preset's defaults, resolved by
    :func:`lthvp.presets.resolve` before hashing so that equal runs share one hash.
    """

    preset: str = "mini"
    dataset: str = "digits"
    method: str = "vp"
    level: int = 0
    shots: int | str = FULL
    seed: int = 0
    arm: str = "ticket"
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    image_size: int | None = None
    mapping: str = "ilm"
    assignment: str = "greedy"
    lp_input: str = "full"  # "full": resize to the model input; "matched": same canvas as VP

    def __post_init__(self):
        object.__setattr__(self, "shots", parse_shots(self.shots))
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {METHODS}")
        if self.mapping not in MAPPINGS:
            raise ValueError(f"unknown label mapping {self.mapping!r}; choose from {MAPPINGS}")
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f"unknown assignment {self.assignment!r}; choose from {ASSIGNMENTS}")
        if self.arm not in ARMS:
            raise ValueError(f"unknown arm {self.arm!r}; choose from {ARMS}")
        if self.lp_input not in ("full", "matched"):
            raise ValueError(f"lp_input must be 'full' or 'matched', got {self.lp_input!r}")
        if self.level < 0:
            raise ValueError(f"level must be >= 0, got {self.level}")
        if self.arm == "random" and self.level == 0:
            raise ValueError("the random-pruning arm needs level >= 1 (level 0 is dense)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown RunConfig fields: {sorted(unknown)}")
        return cls(**data)

    def hash(self) -> str:
        """Stable 16-hex name: sha256 of the canonical JSON of all fields."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)
