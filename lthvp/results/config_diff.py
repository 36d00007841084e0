"""Which settings separate a few runs: each record's config, ticket, data sizes and provenance
flattened to named fields, then split into the fields that differ between the runs and the fields
they share (the Compare page's diff; pure, no Streamlit)."""

from __future__ import annotations

import json
from dataclasses import dataclass

ABSENT = "(absent)"  # a field one record lacks (written by an older schema) differs from any value
DATA_FIELDS = ("ticket", "n_train", "n_val", "n_test", "steps")  # what the config resolved to
# Provenance fields that say *when* or *by which command line* a run was made differ between almost
# any two runs and would bury the settings that matter; the code version, machine and packages stay.
SKIPPED_PROVENANCE = ("created", "command")


def show(value) -> str:
    """One canonical text per value, so equal values compare equal (lists and dicts as sorted JSON)."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)


def settings(record: dict) -> dict[str, str]:
    """A record's settings as {field: text}: ``config.*`` keys bare (``level``, ``lr``), then
    ``ticket``/``n_train``/..., then ``provenance.*`` (packages as ``provenance.packages.torch``)."""
    out = {str(k): show(v) for k, v in (record.get("config") or {}).items()}
    out.update({k: show(record[k]) for k in DATA_FIELDS if k in record})
    prov = record.get("provenance") or {}
    for k, v in prov.items():
        if k in SKIPPED_PROVENANCE:
            continue
        if k == "packages" and isinstance(v, dict):
            out.update({f"provenance.packages.{p}": show(ver) for p, ver in sorted(v.items())})
        else:
            out[f"provenance.{k}"] = show(v)
    return out


@dataclass(frozen=True)
class DiffRow:
    """One field and its text in each run, in the runs' order."""

    field: str
    values: tuple[str, ...]

    def differs_from_first(self) -> tuple[bool, ...]:
        """Per run: does its value differ from the first run's (the cells the page highlights)."""
        return tuple(v != self.values[0] for v in self.values)


@dataclass(frozen=True)
class ConfigDiff:
    differing: tuple[DiffRow, ...]
    shared: tuple[DiffRow, ...]

    @property
    def differing_fields(self) -> list[str]:
        return [r.field for r in self.differing]


def config_diff(records: list[dict]) -> ConfigDiff:
    """Split the runs' settings into fields whose text is not the same in every run and fields that
    are. Fields keep first-seen order (config order first); a field a run lacks reads ABSENT."""
    flat = [settings(r) for r in records]
    fields: dict[str, None] = {}
    for f in flat:
        fields.update(dict.fromkeys(f))
    differing, shared = [], []
    for name in fields:
        row = DiffRow(name, tuple(f.get(name, ABSENT) for f in flat))
        (shared if len(set(row.values)) == 1 else differing).append(row)
    return ConfigDiff(tuple(differing), tuple(shared))
