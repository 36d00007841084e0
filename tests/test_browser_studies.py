"""Real browser, studies: `streamlit run app.py` on a fresh store, which imports the shipped study
under a visible progress message. One run added later to a shipped cell (family 0, VP, L6, 1-shot,
seed 7, stored through the store API as the Run page's worker would) leaves the study-only curve
where it was, says it is not shown, and with "Study runs only" off the cell is ringed, warned about
and counted truly (3 families x 5-6 seeds = 16 runs). A new browser session gets no "results
added" banner: nothing was added in it."""

import pytest

from helpers import REPO, SHIPPED
from test_browser import SHOTS, browser, require_browser, settle, start_streamlit, stop_streamlit  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
URL = "/sparsity?ds=digits&metric=accuracy&by=shots&methods=VP&shots=1-shot&arms=ticket&view=metric"


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    require_browser()
    if not SHIPPED.exists():
        pytest.skip("no shipped bundle")
    directory = tmp_path_factory.mktemp("browser_studies") / "store"
    proc, url = start_streamlit(tmp_path_factory.mktemp("log_studies"), LTHVP_STORE=str(directory),
                                LTHVP_BUNDLES=str(REPO / "cache"), LTHVP_AUTOSTART_WORKER="0")
    yield url, directory
    stop_streamlit(proc)


def level_point(page, level: int) -> tuple[float, str]:
    """(y, replication) of the 1-shot VP curve's point at ``level``, read from the drawn figure."""
    page.wait_for_function("() => { const d = document.querySelector('.js-plotly-plot'); return d && d.data; }",
                           timeout=60_000)
    traces = page.evaluate("() => document.querySelector('.js-plotly-plot').data"
                           ".filter(t => t.mode === 'lines+markers').map(t => [t.name, t.y, t.customdata])")
    (name, ys, custom), = [t for t in traces if t[0] == "1-shot"]
    (i,) = [k for k, row in enumerate(custom) if int(row[0]) == level]
    return float(ys[i]), str(custom[i][4])


def ring_count(page) -> int:
    return page.evaluate("() => document.querySelector('.js-plotly-plot').data"
                         ".filter(t => t.name === 'unequal replication').length")


def add_run_to_the_study(directory) -> float:
    """Store family 0, VP, L6, 1-shot, seed 7 (a copy of seed 0's record with far lower accuracy)."""
    from lthvp.results.config import RunConfig
    from lthvp.results.store import ResultStore

    store = ResultStore(directory)
    df = store.table()
    row = df[(df["family"] == 0) & (df["method"] == "vp") & (df["level"] == 6) & (df["shots"] == "1")
             & (df["arm"] == "ticket") & (df["seed"] == 0)].iloc[0]
    rec = store.get(row["hash"])
    cfg = dict(rec["config"], seed=7)
    rec = dict(rec, config=cfg, hash=RunConfig.from_dict(cfg).hash(),
               metrics=dict(rec["metrics"], accuracy=0.05))
    store.put(rec)
    return rec["metrics"]["accuracy"]


def test_a_run_added_to_a_study_cell_is_marked_counted_and_kept_out_of_the_study(fresh_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, directory = fresh_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url + URL)
    main = page.get_by_test_id("stMain")
    # the first open imports the shipped study: a visible progress message, not a blank page
    expect(main.get_by_text("shipped results (mini_digits.zip) into this store").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(SHOTS / "studies_first_open.png"))
    settle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    study_y, study_label = level_point(page, 6)
    assert study_label == "3 families x 5 seeds = 15 runs"
    expect(main.get_by_text("3 code versions").first).to_be_visible()  # the study panel lists them

    add_run_to_the_study(directory)
    page.goto(url + URL)
    settle(page)
    expect(main.get_by_text("1 run added to this study's cells after it is not shown")).to_be_visible()
    assert level_point(page, 6) == (study_y, study_label)  # the study-only curve did not move
    assert ring_count(page) == 0

    page.get_by_test_id("stSidebar").get_by_text("Study runs only").click()
    settle(page)
    unequal = "3 families x 5-6 seeds = 16 runs; unequal replication: f0 6 seeds, f1 5, f2 5"
    warning = main.get_by_test_id("stAlert").filter(has_text="Unequal replication in 1 cell")
    expect(warning).to_be_visible(timeout=30_000)
    expect(warning).to_contain_text("VP 1-shot L6")
    expect(warning).to_contain_text(unequal)
    all_y, all_label = level_point(page, 6)
    assert all_label == unequal and all_y < study_y  # seed 7 at 5% pulls family 0's mean down
    assert ring_count(page) == 1
    expect(page.locator(".legendtext").filter(has_text="unequal replication")).to_have_count(1)
    page.screenshot(path=str(SHOTS / "studies_unequal.png"), full_page=True)
    page.close()

    fresh = browser.new_context().new_page()  # a new browser session: the import happened before it
    fresh.goto(url + "/overview")
    settle(fresh)
    expect(fresh.get_by_test_id("stHeading").first).to_be_visible()
    expect(fresh.get_by_text("Shipped results:")).to_have_count(0)
    expect(fresh.get_by_text("shipped results (mini_digits.zip) into this store")).to_have_count(0)
    fresh.close()
