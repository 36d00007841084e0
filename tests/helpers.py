"""Shared test helpers (pytest puts tests/ on sys.path): synthetic records, the members of a
one-result bundle, and the bundle the page tests render (the shipped one, or small real runs)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from lthvp.results.config import RunConfig
from lthvp.results.metrics import evaluate
from lthvp.results.presets import resolve
from lthvp.results.run_record import RunRecord
from lthvp.results.store import BundleError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "cache" / "mini_digits.zip"


def png_b64(seed=0, size=16):
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def make_record(seed=0, method="vp", level=0, with_prompt=True, **config):
    """A schema-valid record with random predictions, in the JSON form the store keeps (every
    RunRecord field, None where absent); ``config`` sets other RunConfig fields."""
    cfg = resolve(RunConfig(**{"shots": 5, **config, "method": method, "level": level, "seed": seed}))
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(10), size=40)
    labels = rng.integers(0, 10, size=40)
    m = evaluate(probs, labels)
    record = {"hash": cfg.hash(), "config": cfg.to_dict(),
              "metrics": {k: m[k] for k in ("accuracy", "ece", "mce", "nll", "brier")},
              "reliability": m["reliability"], "per_class_accuracy": m["per_class_accuracy"],
              "remaining_fraction": 0.8 ** level, "best_epoch": 3, "curves": [{"epoch": 1, "val_acc": 0.5}],
              "mapping": list(range(10)) if method == "vp" else None,
              "timings": {"total_seconds": 1.5}, "provenance": {"created": "2024-01-01T00:00:00+00:00"}}
    if with_prompt and method == "vp":
        record["prompt_png"] = png_b64(seed)
    return RunRecord(**record).to_json()


def bundle_members(record):
    """Plain members of a valid one-result bundle (as export_bundle writes them)."""
    rec = dict(record)
    png = rec.pop("prompt_png", None)
    out = []
    if png:
        rec["prompt"] = f"prompts/{rec['hash']}.png"
        out.append((rec["prompt"], base64.b64decode(png)))
    out.append((f"results/{rec['hash']}.json", json.dumps(rec).encode()))
    return out


def bundle_manifest(hashes=()):
    return ("manifest.json", json.dumps({"format": "lthvp-bundle", "version": 1, "count": len(hashes),
                                         "results": list(hashes)}).encode())


def small_configs():
    cfgs = [RunConfig(dataset="digits", method="lp", level=lv, shots=1, seed=sd, epochs=2)
            for lv in (0, 1) for sd in (0, 1)]
    cfgs += [RunConfig(dataset="digits", method="vp", level=lv, shots=1, seed=0, epochs=2) for lv in (0, 1)]
    cfgs += [RunConfig(dataset="digits", method="vp", level=0, shots=2, seed=0, epochs=1)]
    return cfgs


def page_bundle() -> Path:
    """The shipped bundle if present, else a small real one (built once per ticket files)."""
    if SHIPPED.exists():
        return SHIPPED
    from lthvp.compute.runner import run
    from lthvp.results.store import ResultStore

    tickets = [REPO / "tickets" / "mini" / f"level_{i}.safetensors" for i in (0, 1)]
    key = hashlib.sha256(json.dumps([[str(t), t.stat().st_size, t.stat().st_mtime] for t in tickets]
                                    + [c.to_dict() for c in small_configs()]).encode()).hexdigest()[:12]
    path = REPO / "artifacts" / "test-bundle" / f"small-{key}.zip"
    if not path.exists():
        store = ResultStore(path.parent / f"store-{key}")
        for c in small_configs():
            run(c, store)
        store.export_bundle(path, note="test fixture: tiny real runs")
    return path


def store_state(store):
    """Everything a refused import must leave as it was: the version, the hashes, every record."""
    return store.version, store.hashes(), [store.get(h) for h in store.hashes()]


def import_rejected(store, path, *needles) -> str:
    """Import ``path`` expecting a one-line BundleError naming every needle and an unchanged store."""
    before = store_state(store)
    with pytest.raises(BundleError) as exc:
        store.import_bundle(path)
    message = str(exc.value)
    assert "\n" not in message and all(n in message for n in needles), message
    assert store_state(store) == before
    return message
