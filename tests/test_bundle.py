"""The shipped mini study: the bundle covers every promised cell, loads into a fresh store, and
a cell recomputed from the shipped tickets matches the stored numbers."""


import pytest

from lthvp.compute.runner import run
from lthvp.results.config import RunConfig
from lthvp.results.presets import REPO_ROOT, resolve
from lthvp.results.store import read_bundle

BUNDLE = REPO_ROOT / "cache" / "mini_digits.zip"
LEVELS, SHOTS, SEEDS = range(9), (1, 2, 5, 10, "full"), (0, 1, 2)
RANDOM_LEVELS = (2, 4, 6, 8)
# Recomputing on the same CPU build gives identical numbers; other thread counts or CPUs may
# reorder float sums, which can flip a handful of borderline test predictions.
ACCURACY_TOL = 3 / 539  # three test images of digits' 539
CALIBRATION_TOL = 0.01


def expected_cells() -> set[str]:
    cells = [RunConfig(dataset="digits", method=m, level=lv, shots=sh, seed=sd)
             for m in ("vp", "lp") for lv in LEVELS for sh in SHOTS for sd in SEEDS]
    cells += [RunConfig(dataset="digits", method=m, level=lv, shots="full", seed=sd, arm="random")
              for m in ("vp", "lp") for lv in RANDOM_LEVELS for sd in SEEDS]
    return {resolve(c).hash() for c in cells}


@pytest.fixture(scope="module")
def records():
    if not BUNDLE.exists():
        pytest.fail(f"the shipped bundle {BUNDLE} is missing: run scripts/regenerate_mini_bundle.sh")
    return {r.hash: r.to_json() for r in read_bundle(BUNDLE)}


def test_bundle_covers_every_cell(records):
    expected = expected_cells()
    assert len(expected) == 9 * 2 * 5 * 3 + 4 * 2 * 3
    missing = expected - set(records)
    assert not missing, f"{len(missing)} cells missing from the bundle"


def test_bundle_records_carry_provenance_and_prompts(records):
    for record in records.values():
        prov = record["provenance"]
        assert prov["packages"]["torch"] and prov["created"] and "command" in prov
        assert record["timings"]["total_seconds"] > 0
        if record["config"]["method"] == "vp":
            assert record["prompt_png"] and record["mapping"] and len(record["mapping_history"]) >= 1


def test_bundle_imports_into_a_fresh_store(store, records):
    assert store.import_bundle(BUNDLE) == len(records)
    assert store.import_bundle(BUNDLE) == 0  # a second import adds nothing
    assert len(store.table()) == len(records)


@pytest.mark.slow
@pytest.mark.parametrize("cfg", [
    RunConfig(dataset="digits", method="lp", level=6, shots=5, seed=1),
    RunConfig(dataset="digits", method="vp", level=4, shots=2, seed=0),
], ids=["lp-L6-5shot", "vp-L4-2shot"])
def test_recompute_matches_bundle(records, cfg, tmp_path):
    stored = records[resolve(cfg).hash()]
    fresh = run(cfg, store=None).record
    assert fresh["hash"] == stored["hash"]
    assert fresh["remaining_fraction"] == pytest.approx(stored["remaining_fraction"], abs=1e-12)
    assert fresh["metrics"]["accuracy"] == pytest.approx(stored["metrics"]["accuracy"], abs=ACCURACY_TOL)
    for metric in ("ece", "nll", "brier"):
        assert fresh["metrics"][metric] == pytest.approx(stored["metrics"][metric], abs=CALIBRATION_TOL), metric


def test_study_figures_and_tables_come_from_the_bundle(records):
    """The write-up's figures and tables are built from the bundle's own records."""
    from lthvp.ui import figures

    recs = list(records.values())
    figs = figures.study_figures(recs)
    assert set(figs) == {"accuracy_vs_sparsity", "ece_vs_sparsity", "reliability_dense_vs_sparse",
                         "prompts_across_levels"}
    assert len(figs["prompts_across_levels"].data) == 9  # one learned border per level
    tables = figures.study_tables(recs)
    lp_full_l0 = [r["metrics"]["accuracy"] for r in recs if r["config"]["method"] == "lp" and
                  r["config"]["level"] == 0 and r["config"]["shots"] == "full" and r["config"]["arm"] == "ticket"]
    mean = 100 * sum(lp_full_l0) / len(lp_full_l0)
    assert "| L0 (100.0%) |" in tables and f"{mean:.1f} ±" in tables


def test_v2_records_name_the_shipped_ticket_files(records):
    """Every result computed on a v2 family names the ticket it used by that file's recorded digest,
    so a shipped result always points at the shipped ticket (a rebuilt or recompacted family fails)."""
    from lthvp.results.presets import get_preset
    from lthvp.tickets.families import TicketFamily, family_dir

    v2 = [r for r in records.values() if r["config"].get("family") is not None]
    if not v2:
        pytest.skip("the shipped bundle holds no v2-family results yet")
    for r in v2:
        c = r["config"]
        family = TicketFamily(family_dir(get_preset(c["preset"]).family_dir, c["family"]))
        assert r["ticket"] == family.ticket_id(c["level"], c["arm"]), r["hash"]
