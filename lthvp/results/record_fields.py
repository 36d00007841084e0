"""The stored result's fields, typed and named once: :class:`RecordFields` (the dataclass),
``FIELDS``/``REQUIRED``/``OPTIONAL`` derived from it.

Below both the schema (:mod:`record_schema`, which checks these fields) and :class:`RunRecord`
(:mod:`run_record`, which reads a record through the schema), so neither imports the other's
importer. ``config`` is a :class:`RunConfig`; the JSON forms give back the config's dict exactly as
it was received (the same keys in the same order: a first-schema record keeps its first-schema
keys), so stored bytes, bundle members and hashes do not change.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields

from lthvp.results.config import RunConfig


@dataclass(frozen=True)
class RecordFields:
    """One stored result; field meanings in docs/RELIABILITY.md (the record schema)."""

    hash: str
    config: RunConfig
    metrics: dict
    reliability: dict
    remaining_fraction: float
    scaled: dict | None = None
    predictions: dict | None = None
    n_test: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    per_class_accuracy: list | None = None
    classes: list | None = None
    sparsity: dict | None = None
    ticket: str | None = None
    best_epoch: int | None = None
    curves: list | None = None
    mapping: list | None = None
    mapping_history: list | None = None
    prompt_png: str | None = None
    prompt_shift: float | None = None
    steps: int | None = None
    timings: dict | None = None
    provenance: dict | None = None

    def __post_init__(self):
        config = self.config
        if isinstance(config, dict):  # the JSON form (a bundle member, the runner's dict): typed here
            object.__setattr__(self, "config", RunConfig.from_dict(config))
            object.__setattr__(self, "_config_keys", tuple(config))
        elif not isinstance(config, RunConfig):
            raise TypeError(f"config must be a RunConfig or its dict, got {type(config).__name__}")

    def stored_config(self) -> dict:
        """The config's plain dict with the keys it was given (all fields for a RunConfig)."""
        full = self.config.to_dict()
        keys = self.__dict__.get("_config_keys")
        return full if keys is None else {k: full[k] for k in keys}

    def to_json(self) -> dict:
        """A deep copy, safe to change."""
        return {**asdict(self), "config": self.stored_config()}

    def serialisable(self) -> dict:
        """The fields as a shallow dict, for writing out only (never change it): ``asdict`` copies
        every curve and prediction value, which was 40% of importing the shipped bundle."""
        return {f.name: self.stored_config() if f.name == "config" else getattr(self, f.name) for f in fields(self)}


FIELDS = tuple(f.name for f in fields(RecordFields))
REQUIRED = tuple(f.name for f in fields(RecordFields) if f.default is MISSING)
OPTIONAL = tuple(name for name in FIELDS if name not in REQUIRED)
