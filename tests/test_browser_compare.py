"""Real browser, comparing runs: `streamlit run app.py` against a store of synthetic records, headless
Chromium. A comparison of three runs opened from its URL in a fresh browser context draws the three
runs' curves, reliability and prompts and lists the fields that differ; runs picked on Run details
lead to the same kind of link; a link with a bad entry names it."""

import re

import pytest

from helpers import make_record
from test_browser import SHOTS, browser, require_browser, settle, start_streamlit, stop_streamlit  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def runs():
    """Three VP runs that differ in level, seed and learning rate, each with a prompt and curves."""
    out = []
    for seed, level, lr in ((0, 0, 0.01), (1, 2, 0.01), (0, 2, 0.05)):
        rec = make_record(seed, method="vp", level=level, family=0, lr=lr, shots=5, dataset="digits")
        rec["curves"] = [{"epoch": e, "val_acc": 0.3 + 0.1 * e + 0.02 * seed, "train_acc": 0.2 + 0.1 * e,
                          "val_nll": 2.0 - 0.2 * e, "train_loss": 2.2 - 0.3 * e} for e in (1, 2, 3, 4)]
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def compare_server(tmp_path_factory):
    require_browser()
    from lthvp.results.store import ResultStore

    directory = tmp_path_factory.mktemp("browser_compare") / "store"
    store = ResultStore(directory)
    records = runs()
    for rec in records:
        store.put(rec)
    proc, url = start_streamlit(tmp_path_factory.mktemp("log_compare"), LTHVP_STORE=str(directory),
                                LTHVP_BUNDLES=str(tmp_path_factory.mktemp("no_bundles")), LTHVP_AUTOSTART_WORKER="0")
    yield url, [r["hash"] for r in records]
    stop_streamlit(proc)


# the charts on screen (a figure of several panels is also drawn one panel per chart, hidden unless narrow)
VISIBLE = "() => [...document.querySelectorAll('.js-plotly-plot')].filter(d => d.checkVisibility())"


def chart_data(page) -> list[list[dict]]:
    """Every drawn plotly chart's traces (name, type, axis), read from the figures in the page."""
    page.wait_for_function(f"() => ({VISIBLE})().length >= 6 && ({VISIBLE})().every(d => d.data)", timeout=30_000)
    return page.evaluate(f"() => ({VISIBLE})().map(d => d.data.map(t => "
                         "({name: t.name || '', type: t.type || 'scatter', x: t.xaxis || 'x'})))")


def test_a_comparison_of_three_runs_at_a_stable_url(compare_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, hashes = compare_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    order = [hashes[2], hashes[0], hashes[1]]
    context = browser.new_context(viewport={"width": 1440, "height": 1100})  # fresh: no session, no history
    page = context.new_page()
    page.goto(f"{url}/compare?hashes={','.join(order)}")
    settle(page)
    main = page.get_by_test_id("stMain")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(main.get_by_text("Compare runs", exact=True)).to_be_visible()
    expect(main.get_by_text(f"/compare?hashes={','.join(order)}")).to_be_visible()  # the link, order kept
    accuracy, loss, reliability, *prompts = chart_data(page)
    labels = [f"{letter} · VP L{level} 5-shot s{seed} f0" for letter, (seed, level) in zip("ABC", ((0, 2), (0, 0), (1, 2)))]
    for curves in (accuracy, loss):  # validation and training curves of each run, in the link's order
        assert [t["name"] for t in curves if "chosen" not in t["name"]][::2] == labels, curves
    assert [t["name"] for t in accuracy if "chosen" in t["name"]] == [f"{x} chosen epoch" for x in "ABC"]
    assert [t["name"].split(" · ECE")[0] for t in reliability[1:]] == labels
    assert [[t["type"] for t in p] for p in prompts] == [["image"]] * 3
    titles = page.evaluate(f"() => ({VISIBLE})().slice(3).map(d => d.layout.annotations[0].text)")
    assert titles == labels  # each prompt under its run's label
    diff = main.get_by_text(re.compile(r"3 field\(s\) differ"))
    expect(diff).to_be_visible()
    assert all(f in diff.inner_text() for f in ("level", "lr", "seed")) and "dataset" not in diff.inner_text()
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)

    page.get_by_test_id("stRadio").filter(has_text="Reliability diagrams").get_by_text("side by side").click()
    settle(page)
    expect(page).to_have_url(re.compile(r"rel_layout=side\+by\+side"))
    side = f"() => ({VISIBLE})().map(d => d.layout && d.layout.meta && d.layout.meta.titles).filter(t => t)"
    page.wait_for_function(f"() => ({side})().length === 1", timeout=30_000)  # one figure of three diagrams
    assert page.evaluate(side) == [labels]
    page.screenshot(path=str(SHOTS / "compare_side_by_side.png"), full_page=True)
    context.close()


def test_runs_picked_on_run_details_open_their_comparison_and_bad_entries_are_named(compare_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, hashes = compare_server
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/")  # the main page first: a fresh server shows "Page not found" over a first /run-detail
    settle(page)
    page.goto(f"{url}/run-detail")
    settle(page)
    box = page.get_by_test_id("stMultiSelect").filter(has_text="Compare runs")
    for h in hashes[:2]:
        box.locator("input").fill(h)
        page.get_by_role("option").filter(has_text=h).click()
        settle(page)
    page.keyboard.press("Escape")
    page.get_by_role("link", name="Compare 2 runs").click()
    expect(page).to_have_url(re.compile(rf"/compare\?hashes={hashes[0]}(%2C|,){hashes[1]}"), timeout=30_000)
    settle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("2 field(s) differ")).to_be_visible()

    page.goto(f"{url}/compare?hashes={hashes[0]},zz-not-a-hash,{hashes[1]}")
    settle(page)
    expect(page.get_by_text(re.compile(r"left out not a run hash.*zz-not-a-hash"))).to_be_visible()
    expect(page.get_by_text("2 field(s) differ")).to_be_visible()
    page.goto(f"{url}/compare?hashes={','.join(f'{i:016x}' for i in range(7))}")
    settle(page)
    expect(page.get_by_text("A comparison shows at most 6 runs; this link names 7.")).to_be_visible()
    context.close()


def test_runs_box_selected_on_sparsity_open_their_comparison(compare_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, hashes = compare_server
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/sparsity?ds=digits&runs=true")
    settle(page)
    chart = page.locator(".js-plotly-plot:visible").first
    expect(chart).to_be_visible(timeout=30_000)
    chart.hover()
    chart.locator(".modebar-btn[data-val='select']").click()  # the toolbar's box select
    box = chart.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=10)
    page.mouse.up()
    link = page.get_by_role("link", name="Compare these 3 runs")
    expect(link).to_be_visible(timeout=30_000)
    settle(page)  # the rerun the selection started has finished
    link.click()
    expect(page).to_have_url(re.compile(r"/compare\?hashes="), timeout=30_000)
    settle(page)
    expect(page.get_by_text("2 field(s) differ")).to_have_count(0)
    expect(page.get_by_text("3 field(s) differ")).to_be_visible()
    picked = re.search(r"hashes=([^&]+)", page.url).group(1).replace("%2C", ",").split(",")
    assert sorted(picked) == sorted(hashes)
    context.close()
