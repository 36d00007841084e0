"""Real browser, compression arms: `streamlit run app.py` against a store of synthetic records of the
IMP, one-shot and int8 arms (three families x three seeds), headless Chromium. The Sparsity page
draws the arms a link picks (and only those), int8 as markers; the Effects page states the
IMP - one-shot and int8 - float contrasts."""

import re

import numpy as np
import pytest

from helpers import make_record
from test_browser import SHOTS, browser, require_browser, settle, start_streamlit, stop_streamlit  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARMS = (("ticket", (0, 2)), ("oneshot", (2,)), ("quant8", (0, 2)))


@pytest.fixture(scope="module")
def arm_server(tmp_path_factory):
    require_browser()
    from lthvp.results.store import ResultStore

    directory = tmp_path_factory.mktemp("browser_arms") / "store"
    store = ResultStore(directory)
    rng = np.random.default_rng(0)
    for family in (0, 1, 2):
        for seed in (0, 1, 2):
            for method in ("vp", "lp"):
                for arm, levels in ARMS:
                    for level in levels:
                        rec = make_record(seed, method=method, level=level, family=family, arm=arm, shots="full",
                                          dataset="digits")
                        cost = 0.05 if arm == "oneshot" else 0.0  # one-shot pruning transfers 5 points worse
                        store.put({**rec, "metrics": {**rec["metrics"],
                                                      "accuracy": float(0.8 - cost + 0.003 * rng.standard_normal())}})
    bundles = tmp_path_factory.mktemp("no_bundles")  # the synthetic runs only
    proc, url = start_streamlit(tmp_path_factory.mktemp("log_arms"), LTHVP_STORE=str(directory),
                                LTHVP_BUNDLES=str(bundles), LTHVP_AUTOSTART_WORKER="0")
    yield url
    stop_streamlit(proc)


def traces(page) -> dict:
    """{name: mode} of the first plotly chart's curves, read from the drawn figure itself."""
    page.wait_for_function("() => { const d = document.querySelector('.js-plotly-plot'); return d && d.data; }",
                           timeout=30_000)
    data = page.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => [t.name, t.mode])")
    return {name: mode for name, mode in data if mode in ("lines+markers", "markers")}


def test_sparsity_draws_the_arms_a_link_picks_and_effects_state_the_arm_contrasts(arm_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url = arm_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/sparsity?ds=digits&methods=LP&shots=full+data&arms=ticket&arms=oneshot&arms=quant8")
    settle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    drawn = traces(page)
    assert drawn == {"full data": "lines+markers", "full data (one-shot magnitude pruning)": "lines+markers",
                     "full data (int8 weights)": "markers"}, drawn
    assert re.search(r"arms=oneshot", page.url) and re.search(r"arms=quant8", page.url)
    expect(page.locator(".legendtext").filter(has_text="one-shot magnitude pruning")).to_have_count(1)
    page.screenshot(path=str(SHOTS / "sparsity_arms.png"), full_page=True)
    # another link picks IMP alone: the other arms' curves are gone
    page.goto(f"{url}/sparsity?ds=digits&methods=LP&shots=full+data&arms=ticket")
    settle(page)
    assert traces(page) == {"full data": "lines+markers"}

    page.goto(f"{url}/effects?ds=digits&level=L2")
    settle(page)
    main = page.get_by_test_id("stMain")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(main.get_by_text("IMP vs other pruning at equal sparsity")).to_be_visible()
    expect(main.get_by_text("imp-oneshot_L2").first).to_be_visible()
    question = main.get_by_test_id("stText").filter(has_text="LP  full data: detected")
    expect(question.first).to_be_visible()  # one-shot pruning costs 5 points: IMP - one-shot detected
    expect(main.get_by_text("quant8-L0").first).to_be_visible()  # the quantized level defaults to the dense model
    page.screenshot(path=str(SHOTS / "effects_arms.png"), full_page=True)
    page.close()
