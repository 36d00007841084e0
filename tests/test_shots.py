"""lthvp.results.shots: one type for shots (parse, canonical text, labels, order, options per
preset, the CLI's type), and RunRecord.config as a RunConfig whose JSON form is unchanged."""

from __future__ import annotations

import json

import pytest

from helpers import make_record
from lthvp.results import shots
from lthvp.results.config import RunConfig
from lthvp.results.presets import PRESETS
from lthvp.results.record_schema import FIELDS, REQUIRED, flat_row
from lthvp.results.run_record import RunRecord


@pytest.mark.parametrize("raw,parsed,text,label,phrase", [
    (5, 5, "5", "5-shot", "5 shots"), ("5", 5, "5", "5-shot", "5 shots"), (" 10 ", 10, "10", "10-shot", "10 shots"),
    (1, 1, "1", "1-shot", "1 shot"), ("full", "full", "full", "full data", "full data"),
    (" FULL ", "full", "full", "full data", "full data"),
])
def test_parse_text_label_round_trip(raw, parsed, text, label, phrase):
    assert shots.parse(raw) == parsed and type(shots.parse(raw)) is type(parsed)
    assert shots.text(raw) == text and shots.parse(shots.text(raw)) == parsed  # text <-> value round trip
    assert (shots.label(raw), shots.phrase(raw)) == (label, phrase)
    assert RunConfig(shots=raw) == RunConfig(shots=text) and RunConfig(shots=raw).hash() == RunConfig(shots=text).hash()


@pytest.mark.parametrize("bad", [0, -3, "0", "five", "", "1.5", 2.0, True, None])
def test_bad_shots_are_refused(bad):
    with pytest.raises(ValueError, match="shots must be"):
        shots.parse(bad)
    with pytest.raises(ValueError, match="shots must be"):
        RunConfig(shots=bad)


def test_order_is_numeric_with_full_last_and_merges_spellings():
    assert shots.order(["full", 10, "2", 1, "10", 5]) == ["1", "2", "5", "10", "full"]
    assert sorted([5, "full", 1, 10], key=shots.sort_key) == [1, 5, 10, "full"]
    assert shots.label("odd") == "odd-shot" and shots.order(["odd", "2"]) == ["odd", "2"]  # shown, never an error
    assert shots.as_text(0) == "0" and shots.as_text(" 5") == "5"  # analysis tables: canonical, never raising


def test_options_per_preset_come_from_its_training_tables():
    for preset in PRESETS.values():
        opts = shots.options(preset)
        assert opts == shots.order(opts) and opts[-1] == "full"
        assert {shots.parse(o) for o in opts} == set(preset.vp_epochs) | set(preset.vp_steps) | set(preset.vp_batch)
    assert shots.options(PRESETS["mini"]) == ["1", "2", "5", "10", "full"]


@pytest.mark.parametrize("argv", [["run", "--shots", "0"], ["run", "--shots", "five"], ["sweep", "--shots", "1", "x"],
                                  ["subpopulations", "--level", "1", "--shots", "-2"]])
def test_cli_refuses_bad_shots_in_one_line(tmp_path, capsys, argv):
    from lthvp.commands.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv + ["--store", str(tmp_path / "store")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("lthvp") or "error:" in err[-1]
    assert "argument --shots: shots must be" in err[-1]


def test_cli_parses_shots_to_the_config_type():
    from lthvp.commands.cli import build_parser

    args = build_parser().parse_args(["run", "--shots", "5"])
    assert args.shots == 5 and build_parser().parse_args(["run"]).shots == "full"
    sweep = build_parser().parse_args(["sweep", "--shots", "1", "full"])
    assert sweep.shots == [1, "full"]


def test_record_config_is_a_run_config_and_its_json_is_unchanged():
    raw = make_record(5)
    rec = RunRecord.from_json(raw)
    assert isinstance(rec.config, RunConfig) and rec.config.shots == 5 and rec.config.hash() == rec.hash
    assert rec.to_json() == raw and json.dumps(rec.serialisable()) == json.dumps(raw)
    again = RunRecord.from_json(rec.to_json())
    assert again == rec and again.to_json() == raw


def test_a_first_schema_config_keeps_its_keys_in_json():
    """A v1 record's config lacks the later fields: its JSON form must not gain them (stored bytes)."""
    raw = make_record(3, method="lp")
    later = ("family", "steps", "val_per_class", "precision")
    assert all(raw["config"][k] == RunConfig().to_dict()[k] for k in later)  # at their defaults: same hash
    v1 = {**raw, "config": {k: v for k, v in raw["config"].items() if k not in later}}
    rec = RunRecord.from_json(v1)
    assert rec.config == RunConfig.from_dict(v1["config"]) and list(rec.to_json()["config"]) == list(v1["config"])
    assert json.dumps(rec.serialisable()) == json.dumps(v1)
    assert flat_row(rec.serialisable())["precision"] == "fp32"  # the table fills defaults from RunConfig


def test_fields_and_flat_row_derive_from_the_dataclasses():
    import dataclasses

    assert tuple(f.name for f in dataclasses.fields(RunRecord)) == FIELDS
    assert REQUIRED == ("hash", "config", "metrics", "reliability", "remaining_fraction")
    row = flat_row(make_record(2))
    assert row["shots"] == "5" and set(RunConfig().to_dict()) <= set(row)
    with pytest.raises(TypeError, match="config must be"):
        RunRecord(**{**make_record(2), "config": ["not", "a", "config"]})
