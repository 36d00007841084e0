"""RunRecord and AdaptOutcome: the typed record names exactly the schema's fields, round-trips
through JSON, validates what it reads, and a real run produces it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from helpers import make_record
from lthvp.results.record_schema import FIELDS, RecordError
from lthvp.adapt.outcome import AdaptOutcome
from lthvp.results.run_record import RunRecord


def test_record_fields_are_the_schema_fields():
    assert tuple(f.name for f in dataclasses.fields(RunRecord)) == FIELDS


def test_round_trip_and_validation():
    raw = make_record(5)
    rec = RunRecord.from_json(raw)
    assert rec.hash == raw["hash"] and rec.metrics == raw["metrics"] and rec.prompt_shift is None
    again = RunRecord.from_json(rec.to_json())
    assert again == rec
    assert {k: v for k, v in rec.to_json().items() if v is not None}.keys() <= set(FIELDS)
    with pytest.raises(RecordError, match="metrics.accuracy"):
        RunRecord.from_json({**raw, "metrics": {**raw["metrics"], "accuracy": 1.5}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.hash = "0" * 16


def test_the_shallow_view_the_store_writes_is_the_json_form():
    """The store writes ``serialisable()`` (no copy); it must say exactly what ``to_json()`` says,
    and ``to_json()`` stays a copy a caller may change."""
    rec = RunRecord.from_json(make_record(5))
    assert json.dumps(rec.serialisable()) == json.dumps(rec.to_json())
    copy = rec.to_json()
    copy["metrics"]["accuracy"] = 0.0
    assert rec.metrics["accuracy"] != 0.0


def test_a_real_run_builds_a_valid_record(tmp_path):
    from lthvp.compute.runner import run
    from lthvp.results.config import RunConfig

    result = run(RunConfig(family=None, dataset="digits", method="lp", level=1, shots=1, seed=11, epochs=1))
    rec = RunRecord.from_json(result.record)  # validates
    assert rec.to_json() == {k: result.record.get(k) for k in FIELDS}
    assert rec.mapping is None and rec.steps is None and "features_seconds" in rec.timings


def test_adapt_outcome_defaults_are_vp_only_fields():
    import torch

    out = AdaptOutcome(torch.zeros(2, 3), torch.zeros(2, 3), 1, [])
    assert (out.mapping, out.prompt_png, out.steps, out.timings) == (None, None, None, {})
