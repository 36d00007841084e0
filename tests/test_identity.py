"""Result identity survives new code: pinned literal hashes, the first shipped bundle imports
unchanged, and a field added later (with a default) leaves every old hash as it was."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lthvp.results.config import RunConfig
from lthvp.results.store import ResultStore, read_bundle

FIXTURE = Path(__file__).parent / "fixtures" / "mini_digits_v1.zip"  # cache/mini_digits.zip at commit ec3657f


def test_literal_hashes_are_pinned():
    # values computed by the first release (sha256 over all first-schema fields); never edit them
    assert RunConfig().hash() == "2c438d7a9c410334"
    assert RunConfig(family=None, steps=None, val_per_class=None).hash() == "2c438d7a9c410334"
    # a later field at a non-default value names a different result
    assert RunConfig(family=0).hash() == "dd33040cb4f3d679"
    assert RunConfig(family=0).hash() != RunConfig(family=1).hash() != RunConfig().hash()


def test_first_shipped_bundle_imports_with_its_hashes(tmp_path):
    records = read_bundle(FIXTURE)
    assert len(records) == 294
    for r in records:
        assert RunConfig.from_dict(r.config).hash() == r.hash
    store = ResultStore(tmp_path / "store")
    report = store.import_bundle_report(FIXTURE)
    assert len(report.added) == 294 and sorted(store.hashes()) == sorted(r.hash for r in records)
    # a record spot-checked by value (LP, level 6, 5-shot, seed 1), identity pinned literally
    lp = [r for r in records if r.config["method"] == "lp" and r.config["level"] == 6
          and r.config["shots"] == 5 and r.config["seed"] == 1]
    assert len(lp) == 1 and RunConfig.from_dict(lp[0].config).hash() == lp[0].hash


def test_a_field_added_later_keeps_old_hashes():
    @dataclasses.dataclass(frozen=True)
    class Grown(RunConfig):
        temperature_scaling: str = "none"  # a knob a later version might add

    for r in read_bundle(FIXTURE):
        assert Grown.from_dict(r.config).hash() == r.hash
    assert Grown(temperature_scaling="val").hash() != Grown().hash() == RunConfig().hash()
