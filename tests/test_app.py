"""AppTest for every page against a store filled from the shipped bundle (cache/mini_digits.zip)
or, when that is absent, from a small bundle of real tiny runs built once and cached under artifacts/."""

import io
import json
import os
import zipfile

import pytest

from helpers import REPO, page_bundle

PAGES = ["pages/overview.py", "pages/sparsity.py", "pages/calibration.py", "pages/effects.py",
         "pages/run-detail.py", "pages/prompts.py", "pages/run.py", "pages/subpopulations.py",
         "pages/bundles.py"]


@pytest.fixture(scope="module")
def app_store(tmp_path_factory):
    from streamlit import cache_data, cache_resource

    from lthvp.results.store import ResultStore

    directory = tmp_path_factory.mktemp("appstore") / "store"
    store = ResultStore(directory)
    store.import_bundle(page_bundle())
    old = {k: os.environ.get(k) for k in ("LTHVP_STORE", "LTHVP_AUTOSTART_WORKER")}
    os.environ.update(LTHVP_STORE=str(directory), LTHVP_AUTOSTART_WORKER="0")
    cache_data.clear()
    cache_resource.clear()
    yield store
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    cache_data.clear()
    cache_resource.clear()


def app(page=None, query=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    if page:
        at.switch_page(page)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def figures(at):
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def ok(at):
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app_store, page):
    at = ok(app(page))
    assert at.title[0].value
    if page in ("pages/overview.py", "pages/sparsity.py", "pages/calibration.py", "pages/prompts.py"):
        assert figures(at), f"{page} drew no chart"
    for el in at.get("plotly_chart"):  # every chart exports SVG from its toolbar
        assert json.loads(el.proto.config)["toImageButtonOptions"]["format"] == "svg"


def test_overview_numbers(app_store):
    at = ok(app())
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["runs"]) == len(app_store)
    df = app_store.table()
    assert int(metrics["seeds"]) == df["seed"].nunique()
    fig = figures(at)[0]
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert {t.get("name") for t in fig["data"]} >= {"VP", "LP"}
    summary = at.dataframe[0].value
    assert summary["runs"].sum() == len(app_store)
    # the study's answer in one sentence, generated from the effects table, and a link to Effects
    from lthvp.analysis.effects import effects
    from lthvp.analysis.verdicts import headline

    answer = [el.value for el in at.info]
    assert answer == [headline(effects(df, "accuracy", at.selectbox[0].value))]
    assert any("effects" in str(link.proto.page) for link in at.get("page_link"))


def test_sparsity_query_params_round_trip(app_store):
    at = ok(app("pages/sparsity.py", {"metric": "brier", "by": "method"}))
    assert at.selectbox(key="metric").value == "brier"
    assert at.radio(key="by").value == "method"
    fig = figures(at)[0]
    assert fig["layout"]["meta"] == {"metric": "brier", "by": "method", "groups": fig["layout"]["meta"]["groups"],
                                     "value": "brier"}
    assert fig["layout"]["xaxis"]["type"] == "log"
    assert all(t.startswith("L") and t.endswith("%") for t in fig["layout"]["xaxis"]["ticktext"])
    # a view set with the widgets and the same view opened from a URL draw the same figure
    # (widget -> browser URL is done by the frontend; the browser test checks that part)
    at.selectbox(key="metric").set_value("nll").run()
    at.multiselect(key="methods").set_value(["lp"]).run()
    again = ok(app("pages/sparsity.py", {"metric": "nll", "by": "method", "methods": "LP"}))
    assert figures(again) == figures(at)
    ok(at)
    names = {t.get("name") for t in figures(at)[0]["data"]}
    assert figures(at)[0]["layout"]["annotations"][0]["text"] == "1-shot"  # panels per shot count
    assert not any("VP" == n for n in names)


def test_sparsity_hover_has_run_counts(app_store):
    fig = figures(ok(app("pages/sparsity.py")))[0]
    lines = [t for t in fig["data"] if t.get("mode") == "lines+markers"]
    assert lines and all("replicates: %{customdata[4]}" in t["hovertemplate"] for t in lines)
    assert all(" x " in row[4] and " runs" in row[4] for t in lines for row in t["customdata"])  # families x seeds
    # each point's run count is at least 1 and at most the number of stored runs at its level
    df = app_store.table()
    df = df[df["dataset"] == df["dataset"].value_counts().idxmax()]
    counts = df.groupby(["level"]).size()
    assert all(int(row[1]) >= 1 and int(row[1]) <= counts[int(row[0])] for t in lines for row in t["customdata"])


def test_calibration_ece_on_panel_equals_stored(app_store):
    at = ok(app("pages/calibration.py"))
    figs = figures(at)
    assert len(figs) >= 2
    seen = 0
    for fig in figs[:2]:
        eces = fig["layout"]["meta"]["ece"]
        notes = [a["text"] for a in fig["layout"]["annotations"] if a["text"].startswith("ECE")]
        assert len(eces) == len(notes) >= 1
        for ece, note in zip(eces, notes):
            assert note.startswith(f"ECE {100 * ece:.2f}%")
            stored = [r["metrics"]["ece"] for r in app_store.records() if abs(r["metrics"]["ece"] - ece) < 1e-12]
            assert stored, f"panel ECE {ece} matches no stored result"
            seen += 1
    assert seen >= 3
    # the level selector is in the URL
    assert at.selectbox(key="level").options[0] == "L0"
    at2 = ok(app("pages/calibration.py", {"level": "L0", "cal_metric": "brier"}))
    assert at2.selectbox(key="level").value == 0 and at2.radio(key="cal_metric").value == "brier"
    second = at2.selectbox(key="level").options[1]  # "L1" in the v1 study, "L2" in v2
    at2.selectbox(key="level").set_value(int(second[1:])).run()
    assert figures(ok(app("pages/calibration.py", {"level": second, "cal_metric": "brier"}))) == figures(at2)


def test_prompts_page(app_store):
    at = ok(app("pages/prompts.py"))
    figs = figures(at)
    images = [f for f in figs if f["data"] and f["data"][0]["type"] == "image"]
    assert len(images) >= 2  # prompts across levels + prompt applied to target images
    heat = [f for f in figs if f["data"] and f["data"][0]["type"] == "heatmap"]
    assert heat, "label mapping history missing"
    table = at.dataframe[0].value
    assert table.index.name == "target class" and table.shape[0] == 10
    assert set(table.iloc[:, 0]) <= {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                      "Sneaker", "Bag", "Ankle boot"}


def test_run_page_submit_queue_worker_result(app_store):
    from lthvp.compute.jobs import JobQueue
    from lthvp.compute.worker import Worker

    at = ok(app("pages/run.py", {"r_seeds": "7", "r_methods": "LP", "r_epochs": "1", "r_levels": "L0"}))
    assert at.multiselect(key="r_seeds").value == [7]
    assert "1 to train" in at.markdown[0].value
    at.button(key="submit").click().run()
    ok(at)
    assert any("Queued 1 job" in s.value for s in at.success)
    assert any("no worker is alive" in i.value for i in at.info)  # autostart is off in tests
    queue = JobQueue.for_store(os.environ["LTHVP_STORE"])
    (job,) = [j for j in queue.jobs() if j["config"]["seed"] == 7]
    assert job["state"] == "queued"
    # a second identical submission shares the job
    at.run()
    assert "1 queued or running" in at.markdown[0].value and at.button(key="submit").disabled
    Worker(queue, app_store, log=lambda m: None).loop(once=True)
    assert queue.get(job["id"])["state"] == "done" and app_store.has(job["id"])
    at.run()
    ok(at)
    assert "1 already in the store" in at.markdown[0].value
    assert any("green-badge[done]" in m.value for m in at.markdown)
    assert any("accuracy" in m.value and "ECE" in m.value for m in at.markdown)
    links = [el for el in at.get("page_link") if "run-detail" in el.proto.page]
    assert links and f"hash={job['id']}" in links[0].proto.query_string  # the finished job opens its run page


def test_bundles_import_report(app_store, tmp_path):
    at = ok(app("pages/bundles.py"))
    (download,) = at.get("download_button")
    assert f"{len(app_store)} of {len(app_store)} results" in download.proto.label
    data = page_bundle().read_bytes()
    at.file_uploader(key="b_upload_0").upload("again.zip", data, "application/zip")
    ok(at.run())
    text = " ".join(s.value for s in at.success)
    from lthvp.results.store import read_bundle

    n_bundle = len(read_bundle(page_bundle()))
    assert "0 added" in text and f"{n_bundle} skipped" in text
    assert [u.key for u in at.file_uploader] == ["b_upload_1"]  # a fresh uploader: the uploaded bytes are dropped
    table = at.dataframe[0].value
    assert len(table) == n_bundle and set(table["status"]) == {"skipped: already stored"}

    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.json", "{}")
    at.file_uploader(key="b_upload_1").upload("evil.zip", bad.getvalue(), "application/zip")
    ok(at.run())
    assert any("Rejected" in e.value and "unsafe path" in e.value for e in at.error)
    n = len(app_store)

    # a new result in an uploaded bundle is added and reported as such
    from lthvp.results.store import ResultStore

    other = ResultStore(tmp_path / "other")
    other.import_bundle(page_bundle())
    rec = next(iter(other.records()))
    cfg = dict(rec["config"], seed=99)
    from lthvp.results.config import RunConfig

    rec = dict(rec, config=cfg, hash=RunConfig.from_dict(cfg).hash())
    other.put(rec)
    path = other.export_bundle(tmp_path / "new.zip", [rec["hash"]])
    at.file_uploader(key="b_upload_2").upload("new.zip", path.read_bytes(), "application/zip")
    ok(at.run())
    assert any("1 added, 0 skipped" in s.value for s in at.success)
    assert len(app_store) == n + 1 and app_store.has(rec["hash"])


def test_run_detail_page_opens_a_run_and_its_dense_cell(app_store):
    """?hash= opens one run: its metrics, curves, reliability diagram, prompt, and a link to the
    same cell at level 0; an unknown hash is named, not crashed on."""
    vp4 = next(h for h in app_store.hashes() if (r := app_store.get(h))["config"]["method"] == "vp"
               and r["config"]["level"] == 4)
    at = ok(app("pages/run-detail.py", {"hash": vp4}))
    rec = app_store.get(vp4)
    assert [m.label for m in at.metric][:2] == ["accuracy", "ECE"]
    assert at.metric[0].value == f"{100 * rec['metrics']['accuracy']:.2f}%"
    assert len(figures(at)) >= 3  # curves, reliability, prompt views
    assert any("dense level 0" in m.value and "?hash=" in m.value for m in at.markdown)
    bad = ok(app("pages/run-detail.py", {"hash": "not-a-hash"}))
    assert bad.error and bad.code[0].value == "not-a-hash"


def test_sparsity_paired_views_and_every_run(app_store):
    df = app_store.table()
    at = ok(app("pages/sparsity.py", {"view": "vs dense", "runs": "true"}))
    fig = figures(at)[0]
    assert fig["layout"]["meta"]["value"] == "delta" and "change in" in fig["layout"]["yaxis"]["title"]["text"]
    runs = [t for t in fig["data"] if t["name"].endswith(" runs")]
    shown = {row[0] for t in runs for row in t["customdata"]}
    assert shown and shown <= set(df["hash"])  # every point is a stored run that can be opened
    at = ok(app("pages/sparsity.py", {"view": "IMP - random"}))
    if (df["arm"] == "random").any():
        fig = figures(at)[0]
        names = {t["name"] for t in fig["data"] if t.get("mode") == "lines+markers"}
        assert fig["layout"]["meta"]["value"] == "delta" and names and all("(IMP − random)" in n for n in names)
    else:
        assert at.warning and "IMP and random" in at.warning[0].value


def test_prompts_display_views(app_store):
    for view in ("contrast-stretched", "|prompt - start|"):
        at = ok(app("pages/prompts.py", {"display": view}))
        assert at.radio(key="display").value == view and figures(at)


def test_run_page_picks_a_ticket_family(app_store):
    from lthvp.ui.dashboard import family_choices

    choices = family_choices("mini")
    assert None in choices and choices[0] == 0  # v2 families first, the legacy family last
    at = ok(app("pages/run.py", {"r_family": "legacy", "r_seeds": "8", "r_methods": "LP", "r_levels": "L1"}))
    assert at.selectbox(key="r_family").value is None
    at = ok(app("pages/run.py", {"r_family": "family 0", "r_seeds": "8", "r_methods": "mapping only"}))
    assert at.selectbox(key="r_family").value == 0 and at.multiselect(key="r_methods").value == ["map"]
    assert "1 to train" in at.markdown[0].value


def test_a_link_value_that_is_not_available_is_named(app_store):
    at = ok(app("pages/calibration.py", {"level": "L99"}))
    (note,) = [w.value for w in at.warning if "L99" in w.value]
    assert "level=L99 is not available here" in note
    assert at.selectbox(key="level").value == int(at.selectbox(key="level").options[-1][1:])  # the page's choice
    assert at.query_params["level"] == [at.selectbox(key="level").options[-1]]  # written back: the link is complete
    at = ok(app("pages/sparsity.py", {"methods": ["VP", "nonsense"]}))
    assert any("methods=nonsense" in w.value for w in at.warning)


def test_sparsity_numbers_are_in_the_charts_units(app_store):
    at = ok(app("pages/sparsity.py", {"metric": "accuracy"}))
    table = at.dataframe[0].value
    assert {"mean %", "lo %", "hi %", "remaining %"} <= set(table.columns)
    fig = figures(at)[0]
    ys = {round(y, 6) for t in fig["data"] if t.get("mode") == "lines+markers" for y in t["y"]}
    assert {round(v, 6) for v in table["mean %"]} <= ys  # the same numbers as the chart's points
    at = ok(app("pages/sparsity.py", {"metric": "nll"}))
    assert "mean" in at.dataframe[0].value.columns  # NLL has no percent


def test_run_page_controls_survive_a_preset_round_trip(app_store):
    """mini -> paper -> mini used to leave Target on cifar10 and Levels empty ("0 runs selected")."""
    at = ok(app("pages/run.py"))
    before = (at.selectbox(key="r_ds").value, at.multiselect(key="r_levels").value, at.selectbox(key="r_family").value)
    at.selectbox(key="r_preset").set_value("paper").run()
    ok(at)
    assert at.selectbox(key="r_ds").value == "cifar10"  # a paper target while on the paper preset
    at.selectbox(key="r_preset").set_value("mini").run()
    ok(at)
    after = (at.selectbox(key="r_ds").value, at.multiselect(key="r_levels").value, at.selectbox(key="r_family").value)
    assert after == before and "1 runs selected" in at.markdown[0].value
    at.multiselect(key="r_levels").set_value([]).run()
    assert any("choose a level" in c.value for c in at.caption)  # 0 runs, and why



def test_single_run_views_never_mix_ticket_families(tmp_path, monkeypatch):
    """With several families, the calibration and prompt pages draw single runs from one chosen
    family (in the URL), while the sidebar keeps 'all families' for the aggregates."""
    from streamlit import cache_data, cache_resource

    from helpers import make_record
    from lthvp.results.store import ResultStore

    store = ResultStore(tmp_path / "store")
    for family in (0, 1):
        for method in ("vp", "lp"):
            for level in (0, 2):
                record = make_record(0, method=method, level=level, family=family, shots="full", dataset="digits")
                store.put({**record, "prompt_shift": 0.1 if family == 0 else 0.4} if method == "vp" else record)
    (tmp_path / "none").mkdir()
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "none"))  # the two families only
    monkeypatch.setenv("LTHVP_STORE", str(store.directory))
    monkeypatch.setenv("LTHVP_AUTOSTART_WORKER", "0")
    cache_data.clear()
    cache_resource.clear()
    try:
        at = app("pages/calibration.py", {"one_family": "family 1"})
        assert not at.exception, [e.message for e in at.exception]
        assert at.selectbox(key="one_family").value == "1"
        titles = [c.value for c in at.caption if "stored: accuracy" in c.value]
        assert len(titles) == 2 and all("family 1" in t for t in titles), titles
        at = app("pages/prompts.py", {"one_family": "family 1"})
        assert not at.exception, [e.message for e in at.exception]
        prompts = json.loads(at.get("plotly_chart")[0].proto.spec)
        labels = [a["text"] for a in prompts["layout"]["annotations"]]
        assert len(labels) == 2 and all(label.endswith("moved 102/255") for label in labels), labels  # family 1
    finally:
        cache_data.clear()
        cache_resource.clear()


def test_all_families_leaves_the_legacy_study_apart(tmp_path, monkeypatch):
    """An upgraded store holds the legacy v1 runs and the v2 families: 'all families' shows the
    replicated families only; the legacy study is one pick away."""
    from streamlit import cache_data, cache_resource

    from helpers import make_record
    from lthvp.results.store import ResultStore

    store = ResultStore(tmp_path / "store")
    for family in (0, 1, None):
        for level in (0, 2):
            store.put(make_record(0, method="lp", level=level, family=family, shots="full", dataset="digits"))
    (tmp_path / "none").mkdir()
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "none"))
    monkeypatch.setenv("LTHVP_STORE", str(store.directory))
    monkeypatch.setenv("LTHVP_AUTOSTART_WORKER", "0")
    cache_data.clear()
    cache_resource.clear()
    try:
        at = app("pages/overview.py")
        assert not at.exception, [e.message for e in at.exception]
        assert {m.label: m.value for m in at.metric}["runs"] == "4"
        at = app("pages/overview.py", {"family": "legacy study (v1, one family)"})
        assert {m.label: m.value for m in at.metric}["runs"] == "2"
        for family in (None, None, None):  # now the legacy study holds most runs: it is the default view
            store.put(make_record(len(store), method="lp", level=2, family=family, shots="full", dataset="digits"))
        cache_data.clear()
        at = app("pages/overview.py")
        assert {m.label: m.value for m in at.metric}["runs"] == "5" and at.query_params["family"] == [
            "legacy study (v1, one family)"]
        # the effects follow the same choice: the legacy study alone (seeds as unit), or the families
        at = app("pages/effects.py", {"family": "all ticket families (family = unit)"})
        assert not at.exception and any("2 ticket families" in c.value for c in at.caption)
        at = app("pages/effects.py", {"family": "legacy study (v1, one family)"})
        assert not at.exception and any("1 ticket family;" in c.value for c in at.caption)
    finally:
        cache_data.clear()
        cache_resource.clear()


def test_run_page_offers_every_arm_the_family_has_built(tmp_path, monkeypatch):
    """The Arm dropdown lists the arms the chosen family has built (in the study's order), and
    the Levels offered are that arm's; the choice lives in the URL."""
    from streamlit import cache_data, cache_resource

    from lthvp.ui import dashboard

    built = {"ticket": [0, 2, 4], "random": [], "control": [], "oneshot": [2, 4], "oneshot_noft": [],
             "structured": [], "structured_noft": [], "quant8": [0, 2, 4], "quant4": [],
             "remaining": {0: 1.0, 2: 0.64, 4: 0.41}}
    monkeypatch.setattr(dashboard, "family_choices", lambda preset="mini": [0])
    monkeypatch.setattr(dashboard, "family_levels", lambda preset="mini", family=None: built)
    (tmp_path / "none").mkdir()
    monkeypatch.setenv("LTHVP_BUNDLES", str(tmp_path / "none"))
    monkeypatch.setenv("LTHVP_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("LTHVP_AUTOSTART_WORKER", "0")
    cache_data.clear()
    cache_resource.clear()
    try:
        at = ok(app("pages/run.py"))
        assert at.selectbox(key="r_arm").options == ["ticket", "oneshot", "quant8"]
        assert at.selectbox(key="r_arm").value == "ticket" and at.query_params["r_arm"] == ["ticket"]
        at = ok(app("pages/run.py", {"r_arm": "oneshot", "r_levels": ["L2", "L4"], "r_methods": "LP"}))
        assert at.selectbox(key="r_arm").value == "oneshot"
        assert at.multiselect(key="r_levels").options == ["L2", "L4"] and at.multiselect(key="r_levels").value == [2, 4]
        assert "**2 runs selected**" in at.markdown[0].value
        at = ok(app("pages/run.py", {"r_arm": "quant8"}))
        assert at.multiselect(key="r_levels").options == ["L0", "L2", "L4"]  # quantized dense model included
    finally:
        cache_data.clear()
        cache_resource.clear()
