"""End to end on the shipped mini preset: a short real run on sklearn digits for each method
beats chance (10%) clearly; a repeated run comes from the store; the CLI prints one JSON object.

Measured at level 0, seed 0, 1 CPU thread: LP full data 10 epochs -> accuracy ~0.63;
VP full data 2 epochs -> accuracy ~0.30 (chance is 0.10).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lthvp.compute.runner as runner
from lthvp.results.config import RunConfig
from lthvp.results.presets import MINI, REPO_ROOT, resolve
from lthvp.results.store import ResultStore

pytestmark = pytest.mark.slow

LEVEL0 = MINI.family_dir / "level_0.safetensors"
needs_ticket = pytest.mark.skipif(not LEVEL0.exists(), reason="tickets/mini/level_0.safetensors not built")


def _check_record(rec, cfg):
    m = rec["metrics"]
    assert set(m) >= {"accuracy", "ece", "mce", "nll", "brier"}
    assert all(np.isfinite(v) for v in m.values())
    assert 0 <= m["ece"] <= m["mce"] <= 1 and m["nll"] > 0 and 0 <= m["brier"] <= 2
    assert rec["hash"] == resolve(cfg).hash()
    assert rec["remaining_fraction"] == 1.0
    assert rec["n_test"] == sum(rec["reliability"]["count"])
    counts = rec["reliability"]["count"]
    ece = sum(c / rec["n_test"] * abs(a - f) for c, a, f in
              zip(counts, rec["reliability"]["accuracy"], rec["reliability"]["confidence"]) if c)
    assert ece == pytest.approx(m["ece"], abs=1e-9)  # the printed ECE is the diagram's ECE
    assert 1 <= rec["best_epoch"] <= rec["config"]["epochs"]
    assert len(rec["curves"]) == rec["config"]["epochs"]


@needs_ticket
def test_lp_beats_chance_and_second_run_comes_from_store(store, monkeypatch):
    cfg = RunConfig(dataset="digits", method="lp", level=0, shots="full", seed=0, epochs=10)
    first = runner.run(cfg, store)
    rec = first.record
    print("LP level 0 full 10 epochs:", {k: round(v, 4) for k, v in rec["metrics"].items()})
    _check_record(rec, cfg)
    assert rec["metrics"]["accuracy"] > 0.5
    assert rec["n_train"] == 1069 and rec.get("cached", False) is False
    assert store.has(first.hash)

    def boom(*args, **kwargs):
        raise AssertionError("a stored config must not be trained again")

    monkeypatch.setitem(runner.ADAPTERS, "lp", boom)
    second = runner.run(cfg, store)
    assert second.record["cached"] is True and second.hash == first.hash
    assert second.metrics == first.metrics
    assert second.summary()["cached"] is True
    # the same config spelled with explicit defaults is the same stored run
    assert runner.run(cfg.replace(lr=0.01, batch_size=64), store).record["cached"] is True
    with pytest.raises(AssertionError, match="must not be trained"):
        runner.run(cfg, store, force=True)


@needs_ticket
def test_vp_beats_chance(tmp_path):
    store = ResultStore(tmp_path / "store")
    cfg = RunConfig(dataset="digits", method="vp", level=0, shots="full", seed=0, epochs=2)
    result = runner.run(cfg, store)
    rec = result.record
    print("VP level 0 full 2 epochs:", {k: round(v, 4) for k, v in rec["metrics"].items()})
    _check_record(rec, cfg)
    assert rec["metrics"]["accuracy"] > 0.2
    assert len(rec["mapping"]) == 10 and len(set(rec["mapping"])) == 10
    assert len(rec["mapping_history"]) == 2
    assert rec["prompt_png"] and rec["timings"]["images_seen"] == 2 * rec["n_train"]
    # stored, and survives an export/import round trip with its prompt image
    bundle = store.export_bundle(tmp_path / "vp.zip")
    fresh = ResultStore(tmp_path / "fresh")
    assert fresh.import_bundle(bundle) == 1
    assert fresh.get(result.hash)["prompt_png"] == rec["prompt_png"]
    assert fresh.get(result.hash)["metrics"] == rec["metrics"]


@needs_ticket
def test_cli_run_prints_one_json_object(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LTHVP_TEST_THREADS": "1"}
    cmd = [sys.executable, "-m", "lthvp", "run", "--preset", "mini", "--dataset", "digits", "--method", "lp",
           "--level", "0", "--shots", "full", "--seed", "0", "--epochs", "4", "--json", "--family", "legacy",
           "--store", str(tmp_path / "store")]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    for key in ("accuracy", "ece", "nll", "brier", "remaining_fraction", "hash"):
        assert key in out, key
    assert out["hash"] == resolve(RunConfig(method="lp", epochs=4)).hash()
    assert out["remaining_fraction"] == 1.0 and out["accuracy"] > 0.3 and out["cached"] is False
    assert "epoch 4/4" in proc.stderr  # progress is shown (on stderr)
    # the second identical command is answered from the store
    again = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    out2 = json.loads(again.stdout)
    assert out2["cached"] is True and out2["hash"] == out["hash"] and out2["accuracy"] == out["accuracy"]
