"""The stored result, typed: ``RunRecord`` names the record's fields once, here.

The runner builds one, the store writes one (``ResultStore.put``), a bundle reads as a list of
them (``read_bundle``). ``to_json`` gives the plain-JSON dict that crosses process boundaries
(Dask workers, bundle members, the store's values); ``from_json`` validates such a dict with
:mod:`lthvp.results.record_schema` (types, ranges, sizes), so a RunRecord read from anywhere is a
valid one. Importable without torch (the pages use it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from lthvp.results.record_schema import FIELDS, validate_record


@dataclass(frozen=True)
class RunRecord:
    """One stored result; field meanings in docs/RELIABILITY.md (the record schema)."""

    hash: str
    config: dict
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

    def to_json(self) -> dict:
        """A deep copy, safe to change."""
        return asdict(self)

    def serialisable(self) -> dict:
        """The fields as a shallow dict, for writing out only (never change it): ``asdict`` copies
        every curve and prediction value, which was 40% of importing the shipped bundle."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict, name: str | None = None) -> "RunRecord":
        clean = validate_record(data, name)
        return cls(**{k: clean.get(k) for k in FIELDS})

