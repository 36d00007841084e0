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
        assert RunConfig.from_dict(r.stored_config()).hash() == r.hash
    store = ResultStore(tmp_path / "store")
    report = store.import_bundle_report(FIXTURE)
    assert len(report.added) == 294 and sorted(store.hashes()) == sorted(r.hash for r in records)
    # a record spot-checked by value (LP, level 6, 5-shot, seed 1), identity pinned literally
    lp = [r for r in records if r.config.method == "lp" and r.config.level == 6
          and r.config.shots == 5 and r.config.seed == 1]
    assert len(lp) == 1 and RunConfig.from_dict(lp[0].stored_config()).hash() == lp[0].hash


def test_a_field_added_later_keeps_old_hashes():
    @dataclasses.dataclass(frozen=True)
    class Grown(RunConfig):
        temperature_scaling: str = "none"  # a knob a later version might add

    for r in read_bundle(FIXTURE):
        assert Grown.from_dict(r.stored_config()).hash() == r.hash
    assert Grown(temperature_scaling="val").hash() != Grown().hash() == RunConfig().hash()


# -- one type per value: equal configs hash equal, and only equal configs do ------------------------

import pytest  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

SHOTS = st.one_of(st.integers(1, 50), st.sampled_from(["full", "FULL", " Full ", "5", "10"]))
LRS = st.one_of(st.none(), st.integers(1, 5), st.sampled_from([0.01, 0.1, 1.0, 2.0, 1e-3]))


@st.composite
def configs(draw):
    method = draw(st.sampled_from(["vp", "lp", "map"]))
    lr = draw(st.one_of(LRS, st.just(0), st.just(0.0), st.just(-0.0)) if method == "map" else LRS)
    return RunConfig(method=method, shots=draw(SHOTS), lr=lr, level=draw(st.integers(0, 3)),
                     seed=draw(st.integers(0, 3)), epochs=draw(st.one_of(st.none(), st.integers(1, 3))),
                     family=draw(st.one_of(st.none(), st.integers(0, 2))))


def _twin(cfg: RunConfig) -> RunConfig:
    """The same config spelled with other types where Python calls them equal (1 vs 1.0, 5 vs '5')."""
    lr = cfg.lr if cfg.lr is None or cfg.lr != int(cfg.lr) else int(cfg.lr)
    shots = str(cfg.shots).upper() if cfg.shots == "full" else str(cfg.shots)
    return RunConfig(**{**cfg.to_dict(), "lr": lr, "shots": shots})


@settings(max_examples=300, deadline=None)
@given(configs(), configs())
def test_equal_configs_hash_equal_and_only_they(a, b):
    assert (a == b) == (a.hash() == b.hash())
    assert _twin(a) == a and _twin(a).hash() == a.hash()


def test_integer_and_float_spellings_name_one_result():
    assert RunConfig(lr=1).hash() == RunConfig(lr=1.0).hash()  # was 51d12126... vs b90245aa...
    assert RunConfig(lr=1).lr == 1.0 and type(RunConfig(lr=1).lr) is float
    assert RunConfig(method="map", lr=-0.0).hash() == RunConfig(method="map", lr=0).hash()
    assert RunConfig(shots="5").hash() == RunConfig(shots=5).hash()


@pytest.mark.release
def test_shipped_bundles_keep_every_hash():
    shipped = Path(__file__).parent.parent / "cache" / "mini_digits.zip"
    for bundle in (FIXTURE, shipped):
        for r in read_bundle(bundle):
            assert RunConfig.from_dict(r.stored_config()).hash() == r.hash
