"""Run configuration: everything that determines a result, and its stable hash (the run's name).

Identity that survives new code: the fields of the first schema (``V1_FIELDS``) are always
hashed, exactly as the first release did, and every field added later is hashed only when it
differs from its default (OpenLTH's rule). Adding a defaulted field therefore never changes an
existing result's hash; a new non-default value names a new result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass

from lthvp.results.shots import FULL, Shots, parse as parse_shots

METHODS = ("vp", "map", "lp")  # "map": VP's label mapping with the prompt frozen at its start
MAPPINGS = ("ilm", "flm", "rlm")
ASSIGNMENTS = ("greedy", "hungarian")
# "ticket" = IMP, "random" = random pruning at IMP's per-layer counts, "control" = the rewind point retrained
# with no mask (level 0 only: differs from every IMP level only by the mask); the rest are compression arms
# (lthvp.tickets.arms): one-shot magnitude / L1 filter pruning with and without fine-tuning, int8/int4 weights.
ARMS = ("ticket", "random", "control", "oneshot", "oneshot_noft", "structured", "structured_noft", "quant8", "quant4")
PRUNED_ARMS = ("random", "oneshot", "oneshot_noft", "structured", "structured_noft")  # level 0 would be dense
PRECISIONS = ("fp32", "bf16")  # bf16: autocast for VP's steps and passes (the test pass stays fp32); docs/BENCHMARKS.md
# Plausible maxima, refused at entry (CLI, Run page, bundles) instead of overflowing or allocating later: an lr
# of 1e299 overflowed Adam's update; 1e8 epochs would run for years. The shipped studies use lr <= 0.1,
# <= 100 epochs and 1,000 steps.
MAX_LR = 10.0
MAX_EPOCHS = 10_000
MAX_STEPS = 1_000_000
MAX_LEVEL = 100  # IMP levels: 0.8 ** 100 of the weights would be ~2e-10
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # preset and dataset names


@dataclass(frozen=True)
class RunConfig:
    """One transfer experiment: ticket (family, level, arm) x dataset x method x shots x seed.

    ``epochs``/``lr``/``image_size`` default to None = the preset's defaults, resolved by
    :func:`lthvp.results.presets.resolve` before hashing so that equal runs share one hash.
    """

    preset: str = "mini"
    dataset: str = "digits"
    method: str = "vp"
    level: int = 0
    shots: Shots = FULL  # int >= 1 or "full", parsed by lthvp.results.shots
    seed: int = 0
    arm: str = "ticket"
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    image_size: int | None = None
    mapping: str = "ilm"
    assignment: str = "greedy"
    lp_input: str = "full"  # "full": resize to the model input; "matched": same canvas as VP
    # -- fields added after the first schema: hashed only when not at their default ---------
    family: int | None = None  # source seed of the ticket family; None = the preset's legacy single family
    steps: int | None = None  # VP optimizer-step budget (epochs derived from it); None = epochs as given
    val_per_class: int | None = None  # k-shot validation drawn from train, disjoint; None = the val split
    precision: str = "fp32"  # "bf16": VP's training step and mapping/validation passes under bf16 autocast

    def __post_init__(self):
        object.__setattr__(self, "shots", parse_shots(self.shots))
        self._validate()
        if self.lr is not None:  # one type per value: equal configs must hash equal (lr=1 == lr=1.0; -0.0 == 0.0)
            object.__setattr__(self, "lr", float(self.lr) + 0.0)

    def _validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {METHODS}")
        if self.mapping not in MAPPINGS:
            raise ValueError(f"unknown label mapping {self.mapping!r}; choose from {MAPPINGS}")
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f"unknown assignment {self.assignment!r}; choose from {ASSIGNMENTS}")
        if self.arm not in ARMS:
            raise ValueError(f"unknown arm {self.arm!r}; choose from {ARMS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.lp_input not in ("full", "matched"):
            raise ValueError(f"lp_input must be 'full' or 'matched', got {self.lp_input!r}")
        for name in ("preset", "dataset"):
            value = getattr(self, name)
            if not isinstance(value, str) or not NAME.fullmatch(value):
                raise ValueError(f"{name} must be a non-empty name of letters, digits, '_', '.' or '-' "
                                 f"(at most 64), got {value!r}")
        for name, high in (("level", MAX_LEVEL), ("seed", 2 ** 31 - 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise ValueError(f"{name} must be an integer in [0, {high}], got {value!r}")
        for name, low, high in (("epochs", 1, MAX_EPOCHS), ("batch_size", 1, None), ("image_size", 1, None)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low
                                      or (high is not None and value > high)):
                raise ValueError(f"{name} must be an integer >= {low}" + (f" and <= {high}" if high else "")
                                 + f" (or unset for the preset default), got {value!r}")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not 0 <= self.lr <= MAX_LR):
            raise ValueError(f"lr must be a finite number > 0 and <= {MAX_LR:g} (0 only for the mapping-only baseline, "
                             f"method map), got {self.lr!r}")
        if self.lr == 0 and self.method != "map":
            raise ValueError("lr must be > 0 (lr 0 is the mapping-only baseline: use --method map)")
        for name, low, high in (("family", 0, None), ("steps", 0, MAX_STEPS), ("val_per_class", 1, None)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low
                                      or (high is not None and value > high)):
                raise ValueError(f"{name} must be an integer >= {low}" + (f" and <= {high}" if high else "")
                                 + f" or None, got {value!r}")
        if self.arm == "control" and self.level != 0:
            raise ValueError("the rewound-dense control has level 0 only (it has no mask)")
        if self.arm in PRUNED_ARMS and self.level == 0:
            name = "random-pruning" if self.arm == "random" else self.arm
            raise ValueError(f"the {name} arm needs level >= 1 (level 0 is dense)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown RunConfig fields: {sorted(unknown)}")
        return cls(**data)

    def identity(self) -> dict:
        """The fields that name the result: all first-schema fields, later ones only if non-default."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return {k: v for k, v in self.to_dict().items() if k in V1_FIELDS or v != defaults[k]}

    def hash(self) -> str:
        """Stable 16-hex name: sha256 of the canonical JSON of :meth:`identity`."""
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)


V1_FIELDS = frozenset(("preset", "dataset", "method", "level", "shots", "seed", "arm", "epochs", "lr", "batch_size",
                       "image_size", "mapping", "assignment", "lp_input"))
