"""Every bundle that passes validation keeps the pages up: after importing each accepted bundle of a
corpus (legacy results, hostile text, the largest allowed prompts, extreme but valid numbers, a lone
cell, mixed families) the Overview, Sparsity, Calibration, Prompts, Effects and Bundles pages render
under AppTest without an exception, in a fresh process whose peak memory is measured."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from helpers import REPO, bundle_members, make_record
from lthvp.results.store import ResultStore

PAGES = ["pages/overview.py", "pages/sparsity.py", "pages/calibration.py", "pages/prompts.py", "pages/effects.py",
         "pages/bundles.py"]
# The incidents this guards against took 3.3 GB and 21 GB; rendering the six pages over the shipped
# bundle grows the process by 70-150 MB on this machine (the largest prompts: 151 MB).
MAX_GROWTH_MB = 512

RENDER = r"""
import json, os, resource, sys
from streamlit.testing.v1 import AppTest
import lthvp.ui.dashboard  # the pages' imports, so the baseline holds them
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {"errors": {}, "charts": {}}
for page in sys.argv[1:]:
    at = AppTest.from_file("app.py", default_timeout=120)
    at.switch_page(page)
    at.run()
    out["errors"][page] = [e.message for e in at.exception]
    out["charts"][page] = len(at.get("plotly_chart"))
out["growth_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
print(json.dumps(out))
"""

HOSTILE_TEXT = ["**bold** _it_ # heading", "<script>alert(1)</script>", "![x](http://198.51.100.1/x.png)",
                "[click](javascript:alert(1))", "<img src=x onerror=alert(1)>", "$\\frac{1}{0}$ `code` | a | b |"]


def _noise_png(seed: int, side: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _grid(**config):
    """VP and LP at levels 0 and 2, two seeds: enough for every page to draw its charts."""
    return [make_record(seed, method, level, **config) for method in ("vp", "lp") for level in (0, 2) for seed in (0, 1)]


def _hostile_text():
    recs = _grid()
    for i, r in enumerate(recs):
        r["classes"] = [HOSTILE_TEXT[(i + k) % len(HOSTILE_TEXT)] + f" {k}" for k in range(10)]
        r["ticket"] = HOSTILE_TEXT[i % len(HOSTILE_TEXT)]
        r["provenance"] = {"created": "2024-01-01T00:00:00+00:00", "submitter": HOSTILE_TEXT[i % len(HOSTILE_TEXT)],
                           "command": " ".join(HOSTILE_TEXT)}
    return recs, " ".join(HOSTILE_TEXT)


def _largest_prompts():
    recs = _grid()
    for i, r in enumerate(recs):
        if r["config"]["method"] == "vp":
            r["prompt_png"] = _noise_png(i, 512)  # the largest side the schema accepts
    return recs, "largest prompts"


def _extremes():
    recs = _grid()
    for i, r in enumerate(recs):
        accuracy = float(i % 2)  # 0 or 1
        r["metrics"] = {"accuracy": accuracy, "ece": 1.0 - accuracy, "mce": 1.0 - accuracy, "nll": 1e4 * (1 - accuracy),
                        "brier": 2.0 * (1 - accuracy)}
        r["curves"], r["per_class_accuracy"], r["best_epoch"] = [], None, None
        if r["config"]["method"] == "vp":
            r["mapping"] = [0] * 10  # every target class on one source class
    return recs, "extremes"


def _lone_cell():
    return [make_record(3, "lp", 5)], "one LP run at level 5, no level 0"


def _families():
    recs = _grid() + _grid(family=0) + _grid(family=1)
    recs += [make_record(seed, "vp", 2, arm="random", family=0) for seed in (0, 1)]
    return recs, "legacy and v2 families mixed"


def _write_bundle(path, records, note):
    members = [m for r in records for m in bundle_members(r)]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps({"format": "lthvp-bundle", "version": 1, "note": note}))
        for name, data in members:
            zf.writestr(name, data)
    return path


CORPUS = {"v1 fixture": None, "hostile text": _hostile_text, "largest prompts": _largest_prompts,
          "extremes": _extremes, "lone cell": _lone_cell, "families": _families}


@pytest.mark.slow  # one fresh process per bundle
@pytest.mark.parametrize("case", list(CORPUS))
def test_pages_render_after_every_accepted_bundle(tmp_path, case):
    make = CORPUS[case]
    bundle = REPO / "tests" / "fixtures" / "mini_digits_v1.zip" if make is None else _write_bundle(
        tmp_path / "b.zip", *make())
    store = ResultStore(tmp_path / "store")
    added = store.import_bundle(bundle)  # accepted: raises otherwise
    assert added == len(store) > 0
    env = {**os.environ, "LTHVP_STORE": str(tmp_path / "store"), "LTHVP_AUTOSTART_WORKER": "0",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", RENDER, *PAGES], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == {p: [] for p in PAGES}, out["errors"]
    assert out["growth_mb"] < MAX_GROWTH_MB, f"{case}: pages grew the process by {out['growth_mb']:.0f} MB"
    if case != "lone cell":  # the lone cell has nothing to compare: notices, not charts
        assert all(out["charts"][p] for p in ("pages/overview.py", "pages/sparsity.py", "pages/calibration.py")), out
