"""Comparing runs: the config diff (lthvp.results.config_diff), the comparison link's run list
(compare_views.parse_runs), the comparison figures and table, and the Compare page under AppTest
against a real store of synthetic records."""

import json
import os

import pytest

from helpers import REPO, make_record
from lthvp.results.config_diff import ABSENT, config_diff, settings, show
from lthvp.ui import compare_views as cv

A, B, C = "0123456789abcdef", "fedcba9876543210", "00000000000000aa"
KNOWN = {A, B, C}


# --- the diff -----------------------------------------------------------------------------------
def test_diff_lists_exactly_the_fields_that_differ_in_config_order():
    runs = [make_record(seed=0, level=0), make_record(seed=1, level=2), make_record(seed=0, level=2)]
    diff = config_diff(runs)
    assert diff.differing_fields == ["level", "seed"]
    level = diff.differing[0]
    assert level.values == ("0", "2", "2") and level.differs_from_first() == (False, True, True)
    shared = {r.field: r.values for r in diff.shared}
    assert shared["dataset"] == ("digits",) * 3 and shared["method"] == ("vp",) * 3
    assert not set(diff.differing_fields) & set(shared)


def test_diff_reads_ticket_code_version_and_packages_but_not_time_or_command():
    one, two = make_record(seed=0), make_record(seed=0)
    one["provenance"] = {"git_commit": "aaa", "created": "2024-01-01", "command": "x", "packages": {"torch": "2.1"}}
    two["provenance"] = {"git_commit": "bbb", "created": "2025-01-01", "command": "y", "packages": {"torch": "2.2"}}
    one["ticket"], two["ticket"] = "family_0:ticket:0:ab", "family_0:ticket:0:ab"
    diff = config_diff([one, two])
    assert diff.differing_fields == ["provenance.git_commit", "provenance.packages.torch"]
    assert "ticket" in {r.field for r in diff.shared}
    assert not any("created" in f or "command" in f for f in settings(one))


def test_a_field_one_record_lacks_differs_and_values_compare_canonically():
    old, new = make_record(seed=0), make_record(seed=0)
    new["config"] = {**new["config"], "precision": "bf16"}
    old["config"] = {k: v for k, v in old["config"].items() if k != "precision"}
    row = config_diff([old, new]).differing[0]
    assert (row.field, row.values) == ("precision", (ABSENT, "bf16"))
    assert show({"b": 1, "a": [1, 2]}) == show({"a": [1, 2], "b": 1}) and show(None) == "null"
    assert show(5) != show("5x") and show(0.01) == "0.01"


def test_identical_runs_share_every_field():
    diff = config_diff([make_record(seed=3), make_record(seed=3)])
    assert diff.differing == () and len(diff.shared) > 10


# --- the link -----------------------------------------------------------------------------------
def test_link_keeps_order_and_names_what_it_leaves_out():
    link = cv.parse_runs(f"{C},{A}, {B}", KNOWN)
    assert link.hashes == (C, A, B) and link.notice() is None and not link.refused
    bad = cv.parse_runs([f"{B},nothex,{A}", f"{'1' * 16},{B}", "ABCDEF0123456789"], KNOWN)
    assert bad.hashes == (B, A)
    assert bad.ill_formed == ("nothex", "ABCDEF0123456789") and bad.unknown == ("1" * 16,) and bad.repeated == (B,)
    line = bad.notice()
    assert "\n" not in line and "nothex" in line and "1" * 16 in line and "named twice" in line
    assert cv.parse_runs(None, KNOWN).hashes == () and cv.parse_runs(" , ,", KNOWN).named == 0


def test_link_text_is_escaped_in_the_notice():
    line = cv.parse_runs("[x](http://evil),<b>", KNOWN).notice()
    assert "](" not in line and "\\[x\\]" in line and "\\<b\\>" in line


def test_more_than_six_runs_are_refused_with_the_limit_named():
    many = [f"{i:016x}" for i in range(7)]
    link = cv.parse_runs(",".join(many), set(many))
    assert link.refused and link.named == 7
    assert "at most 6" in link.refusal() and "names 7" in link.refusal()
    six = cv.parse_runs(",".join(many[:6]), set(many))
    assert not six.refused and six.refusal() is None and six.hashes == tuple(many[:6])
    assert cv.link_value(six.hashes) == ",".join(many[:6])


# --- figures and table --------------------------------------------------------------------------
def three_runs():
    lp = make_record(seed=1, method="lp", level=2)
    lp["metrics"] = {**lp["metrics"], "accuracy": 0.5}
    vp0, vp2 = make_record(seed=0, level=0), make_record(seed=0, level=2)
    vp0["metrics"] = {**vp0["metrics"], "accuracy": 0.8}
    vp0["curves"] = [{"epoch": e, "val_acc": 0.1 * e, "train_acc": 0.1, "val_nll": 1.0, "train_loss": 2.0}
                     for e in (1, 2, 3)]
    return [vp0, vp2, lp]


def test_summary_in_percent_and_differences_in_points():
    table = cv.summary_table(three_runs())
    assert list(table["run"]) == ["A", "B", "C"]
    assert table.loc[0, "accuracy %"] == 80.0 and table.loc[2, "accuracy %"] == 50.0
    assert table.loc[2, "accuracy vs A (points)"] == -30.0 and table.loc[0, "accuracy vs A (points)"] == 0.0


def test_figures_draw_every_run():
    runs = three_runs()
    labels = {label for _, label, _ in cv.lettered(runs)}
    accuracy, loss = cv.curves_overlay(runs, "accuracy"), cv.curves_overlay(runs, "loss")
    assert {t.name for t in accuracy.data if t.showlegend is not False} == labels
    assert {t.name for t in loss.data if t.showlegend is not False} == {"A · VP L0 5-shot s0"}  # only A logged NLL
    star = [t for t in accuracy.data if t.name == "A chosen epoch"]
    assert star and star[0].y[0] == pytest.approx(30.0)  # best_epoch 3: validation accuracy 0.3 as %
    assert max(max(t.y) for t in accuracy.data) <= 100 and "%" in accuracy.layout.yaxis.title.text
    assert max(max(t.y) for t in loss.data) == pytest.approx(2.0) and "nats" in loss.layout.yaxis.title.text
    rel = cv.reliability_overlay(runs)
    assert len(rel.data) == 4 and all("ECE" in t.name for t in rel.data[1:])
    assert [len(f.layout.meta["titles"]) for f in cv.reliability_rows(runs, per_row=2)] == [2, 1]
    four = runs + [make_record(seed=5)]
    assert [len(f.layout.meta["titles"]) for f in cv.reliability_rows(four)] == [2, 2]  # balanced rows
    figures, without = cv.prompt_figures(runs, "contrast-stretched")
    assert [sum(t.type == "image" for t in f.data) for f in figures] == [1, 1] and len(without) == 1
    assert "LP" in without[0] and cv.prompt_figures(runs[2:], "as learned")[0] == []


# --- the page -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compare_store(tmp_path_factory):
    from streamlit import cache_data, cache_resource

    from lthvp.results.store import ResultStore

    directory = tmp_path_factory.mktemp("compare") / "store"
    store = ResultStore(directory)
    runs = three_runs()
    for r in runs:
        store.put(r)
    old = {k: os.environ.get(k) for k in ("LTHVP_STORE", "LTHVP_AUTOSTART_WORKER", "LTHVP_BUNDLES")}
    os.environ.update(LTHVP_STORE=str(directory), LTHVP_AUTOSTART_WORKER="0",
                      LTHVP_BUNDLES=str(tmp_path_factory.mktemp("no_bundles")))
    cache_data.clear()
    cache_resource.clear()
    yield [r["hash"] for r in runs]
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    cache_data.clear()
    cache_resource.clear()


def compare_page(query):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.switch_page("pages/compare.py")
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_page_draws_the_linked_runs_and_names_bad_entries(compare_store):
    hashes = compare_store
    at = compare_page({"hashes": ",".join([hashes[2], hashes[0], "nothex", "1" * 16, hashes[1]])})
    assert [w.value for w in at.warning if "left out" in w.value]
    assert at.multiselect(key="cmp_runs").value == [hashes[2], hashes[0], hashes[1]]  # order kept
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    assert len(specs) == 5  # accuracy, loss, reliability overlaid, the two VP runs' prompts
    assert specs[0]["layout"]["meta"]["runs"][0].startswith("A · LP")
    assert [s["layout"]["meta"].get("panel") for s in specs[:2]] == ["accuracy", "loss"]
    assert any("differ" in c.value and "level" in c.value and "seed" in c.value for c in at.caption)


def test_page_refuses_seven_runs(compare_store):
    at = compare_page({"hashes": ",".join(f"{i:016x}" for i in range(7))})
    assert any("at most 6" in e.value for e in at.error)
    assert not at.get("plotly_chart")


def test_page_side_by_side_reliability_and_prompt_views(compare_store):
    at = compare_page({"hashes": ",".join(compare_store), "rel_layout": "side by side", "cmp_view": "|prompt - start|"})
    assert not at.warning
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    labels = [label for _, label, _ in cv.lettered(three_runs())]
    titled = [s["layout"]["meta"]["titles"] for s in specs if s["layout"].get("meta", {}).get("titles")]
    assert titled[0] == labels  # one figure of three diagrams (charts.show may repeat its panels one by one for phones)
    assert [sum(t["type"] == "image" for t in s["data"]) for s in specs if any(t["type"] == "image" for t in s["data"])] \
        == [1, 1]
