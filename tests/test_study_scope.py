"""AppTest: the Calibration, Effects and Subpopulations pages follow the sidebar's study. A store
seeded from a shipped-like study (3 families x 3 seeds, VP and LP, dense and L4, with per-sample
predictions over the real digits test split) gets one run added later in an existing cell (family 0,
VP, L4, seed 7, every prediction wrong). With "Study runs only" on (the default) each page shows
exactly the numbers it showed before the run was added; with it off, the cell's unequal replication
is named in a warning and the run is counted and marked."""

import os

import numpy as np
import pytest

from test_app import app, figures, ok
from test_subpopulations import HOSTILE, K, planted_records, probs_for, record

pytestmark = pytest.mark.slow
CELL = "VP full data L4"  # the cell the added run lands in, as the warning names it
UNEQUAL = "unequal replication: f0 4 seeds, f1 3, f2 3"


def calibration_numbers(at) -> tuple:
    return (figures(at), [c for c in captions(at) if "stored: accuracy" in c])


def effects_numbers(at) -> tuple:
    tables = [d.value for d in at.dataframe if "contrast" in d.value.columns]
    return ([t.to_json() for t in tables], [t.value for t in at.text])


def subpop_numbers(at) -> tuple:
    per_class = [d.value.to_json() for d in at.dataframe if "metric" in d.value.columns]
    return (per_class, figures(at), [t.value for t in at.text])


PAGES = {"pages/calibration.py": calibration_numbers, "pages/effects.py": effects_numbers,
         "pages/subpopulations.py": subpop_numbers}


def unescaped(text: str) -> str:
    """Text as the reader sees it: lthvp.ui.text.plain escapes Markdown with backslashes."""
    return text.replace("\\", "")


def warnings(at) -> list[str]:
    return [unescaped(w.value) for w in at.warning]


def captions(at) -> list[str]:
    return [unescaped(c.value) for c in at.caption]


@pytest.fixture(scope="module")
def study_store(tmp_path_factory):
    """(the store, each page's numbers before the run was added); the run is added afterwards."""
    from streamlit import cache_data, cache_resource

    from lthvp.analysis import subpopulations as S
    from lthvp.results import studies
    from lthvp.results.store import ResultStore

    root = tmp_path_factory.mktemp("study_scope")
    _, labels, _ = S.test_split("digits")
    src = ResultStore(root / "src")
    for r in planted_records(labels, seeds=(0, 1, 2), classes=HOSTILE):
        src.put(r)
    src.export_bundle(root / "shipped" / "study.zip", note="shipped-like study")
    keys = ("LTHVP_STORE", "LTHVP_AUTOSTART_WORKER", "LTHVP_BUNDLES")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(LTHVP_STORE=str(root / "store"), LTHVP_AUTOSTART_WORKER="0",
                      LTHVP_BUNDLES=str(root / "shipped"))
    cache_data.clear()
    cache_resource.clear()
    try:
        before = {page: numbers(ok(app(page))) for page, numbers in PAGES.items()}  # the first open imports it
        store = ResultStore(root / "store")
        (study,), problems = studies.studies(store)
        assert problems == [] and study.source == "shipped" and len(study.members) == len(store) == 36
        wrong = (labels + 1) % K  # the added run gets every image wrong: it would move every mean it enters
        store.put(record("vp", 4, 0, 7, probs_for(wrong), HOSTILE, labels))
        yield store, before
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        cache_data.clear()
        cache_resource.clear()


@pytest.mark.parametrize("page", list(PAGES))
def test_study_only_shows_the_study_numbers_and_all_runs_warns(study_store, page):
    store, before = study_store
    assert len(store) == 37
    at = ok(app(page))
    assert at.toggle(key="study_only").value is True
    assert any("1 run added to this study's cells after it is not shown" in i.value for i in at.info)
    assert any("uses only the planned runs of study study.zip (36 runs)" in c for c in captions(at))
    assert PAGES[page](at) == before[page]  # the added run changed nothing
    assert not any("Unequal replication" in w for w in warnings(at))

    at = ok(app(page, {"study_only": "false"}))
    assert at.toggle(key="study_only").value is False
    warned = [w for w in warnings(at) if w.startswith("Unequal replication in 1 cell")]
    assert len(warned) == 1 and CELL in warned[0] and UNEQUAL in warned[0], warnings(at)
    assert any("study study.zip's planned runs and 1 other (marked ★" in c for c in captions(at))


def test_calibration_counts_and_marks_the_added_run(study_store):
    at = ok(app("pages/calibration.py", {"study_only": "false"}))
    shift = figures(at)[-1]
    vp = next(t for t in shift["data"] if t["name"] == "VP")
    assert vp["customdata"][-1] == f"3 families x 3-4 seeds = 10 runs; {UNEQUAL}"  # L4, the added run's cell
    assert vp["customdata"][0] == "3 families x 3 seeds = 9 runs"
    assert shift != calibration_numbers(ok(app("pages/calibration.py")))[0][-1]  # the mean moved
    at = ok(app("pages/calibration.py", {"study_only": "false", "seed": "7"}))
    assert any("★ added after the study" in c for c in captions(at) if "stored: accuracy" in c)
    assert "7" not in [str(o) for o in ok(app("pages/calibration.py")).selectbox(key="seed").options]


def test_subpopulations_gives_the_true_replicates(study_store):
    said = " ".join(captions(ok(app("pages/subpopulations.py"))))
    assert "VP L4: 3 families x 3 seeds = 9 runs" in said and "VP L0: 3 families x 3 seeds = 9 runs" in said
    said = " ".join(captions(ok(app("pages/subpopulations.py", {"study_only": "false"}))))
    assert f"VP L4: 3 families x 3-4 seeds = 10 runs; {UNEQUAL}" in said


def test_effects_study_only_analyses_the_planned_runs(study_store):
    from lthvp.analysis.effects import effects

    store, _ = study_store
    table = store.table()
    table["shots"] = table["shots"].astype(str)
    planned = effects(table[table["seed"] != 7], "accuracy", "digits")
    at = ok(app("pages/effects.py"))
    shown = next(d.value for d in at.dataframe if "contrast" in d.value.columns)
    assert len(shown) == len(planned) and set(shown["contrast"]) == set(planned["contrast"])
    assert np.isfinite(shown.select_dtypes("number").to_numpy(dtype=float)).any()


def test_study_only_keeps_paired_added_runs_out_of_the_analyses(tmp_path, monkeypatch):
    """Added runs that pair up (family 0, seed 7, VP dense and L4) would enter the contrasts and the
    per-class analysis with every run; study-only, both pages give the study's numbers."""
    from streamlit import cache_data, cache_resource

    from lthvp.analysis import subpopulations as S
    from lthvp.results.store import ResultStore

    _, labels, _ = S.test_split("digits")
    src = ResultStore(tmp_path / "src")
    for r in planted_records(labels, seeds=(0, 1, 2), classes=HOSTILE):
        src.put(r)
    src.export_bundle(tmp_path / "shipped" / "study.zip", note="shipped-like study")
    monkeypatch.setenv("LTHVP_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("LTHVP_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "shipped"))
    cache_data.clear()
    cache_resource.clear()
    pages = {"pages/effects.py": effects_numbers, "pages/subpopulations.py": subpop_numbers}
    try:
        before = {page: numbers(ok(app(page))) for page, numbers in pages.items()}
        store = ResultStore(tmp_path / "store")
        store.put(record("vp", 0, 0, 7, probs_for(labels), HOSTILE, labels))
        store.put(record("vp", 4, 0, 7, probs_for((labels + 1) % K), HOSTILE, labels))
        for page, numbers in pages.items():
            assert numbers(ok(app(page))) == before[page], page
            assert numbers(ok(app(page, {"study_only": "false"}))) != before[page], page  # they would enter
    finally:
        cache_data.clear()
        cache_resource.clear()
