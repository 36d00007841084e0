"""Real browser, run search: `streamlit run app.py` against a store of synthetic records (two
families x three levels x four seeds x VP/LP, two code commits), headless Chromium. Typing
`L8 seed 3` on Run details lists exactly the runs at level 8 with seed 3 (read back from the
table's own CSV download), an unknown word is named on the page, and a commit word narrows them."""

import io

import pandas as pd
import pytest

from helpers import make_record
from test_browser import SHOTS, browser, require_browser, settle, start_streamlit, stop_streamlit  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
COMMITS = ("1111111aaaa" + "0" * 29, "2222222bbbb" + "0" * 29)


@pytest.fixture(scope="module")
def search_server(tmp_path_factory):
    require_browser()
    from lthvp.results.store import ResultStore

    directory = tmp_path_factory.mktemp("browser_search") / "store"
    store = ResultStore(directory)
    expected = {}
    for family in (0, 1):
        for level in (0, 2, 8):
            for seed in range(4):
                for method in ("vp", "lp"):
                    rec = make_record(seed, method=method, level=level, family=family, shots="full", dataset="digits")
                    commit = COMMITS[family]
                    rec["provenance"] = {**rec["provenance"], "git_commit": commit,
                                         "created": f"2026-11-{20 + seed:02d}T10:00:00+00:00"}
                    store.put(rec)
                    expected[rec["hash"]] = (family, level, seed, method, commit)
    bundles = tmp_path_factory.mktemp("no_bundles")  # the synthetic runs only
    proc, url = start_streamlit(tmp_path_factory.mktemp("log_search"), LTHVP_STORE=str(directory),
                                LTHVP_BUNDLES=str(bundles), LTHVP_AUTOSTART_WORKER="0")
    yield url, expected
    stop_streamlit(proc)


def listed(page) -> set[str]:
    """The hashes the runs table lists, from its own 'Download as CSV' (what the grid holds)."""
    page.evaluate("() => { delete window.showSaveFilePicker; window.showSaveFilePicker = undefined; }")  # a plain download
    grid = page.get_by_test_id("stDataFrame").first
    grid.hover()
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Download as CSV").first.click()
    text = open(download.value.path(), encoding="utf-8-sig").read()
    return set(pd.read_csv(io.StringIO(text), dtype=str)["hash"])


def search(page, text: str) -> None:
    from playwright.sync_api import expect

    box = page.get_by_label("Search runs", exact=True).and_(page.get_by_role("textbox"))
    box.fill(text)
    box.press("Enter")
    settle(page)
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text=" runs").first).to_be_visible()


def test_search_l8_seed_3_lists_exactly_the_matching_runs(search_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    url, expected = search_server
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{url}/")
    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Run details").click()
    settle(page)
    want = {h for h, (_, level, seed, _, _) in expected.items() if level == 8 and seed == 3}
    assert len(want) == 4  # two families x VP/LP
    search(page, "L8 seed 3")
    expect(page.get_by_text(f"{len(want)} of {len(expected)} runs")).to_be_visible(timeout=30_000)
    assert listed(page) == want
    assert page.evaluate("() => new URL(location.href).searchParams.get('q')") == "L8 seed 3"  # shareable
    page.screenshot(path=str(SHOTS / "search_l8_seed3.png"), full_page=True)

    # the app's other words, AND-ed: a family word and a commit word narrow the same runs
    search(page, "level 8 seed 3 family 1 vp")
    only = {h for h, (f, level, seed, m, _) in expected.items() if (f, level, seed, m) == (1, 8, 3, "vp")}
    expect(page.get_by_text(f"1 of {len(expected)} runs")).to_be_visible(timeout=30_000)
    assert listed(page) == only
    search(page, f"L8 seed 3 commit {COMMITS[0][:7]}")
    assert listed(page) == {h for h in want if expected[h][4] == COMMITS[0]}

    # an unknown word is named on the page, never silently dropped
    search(page, "L8 seed 3 banana")
    expect(page.get_by_text("Not understood, left out of the search: 'banana'")).to_be_visible(timeout=30_000)
    assert listed(page) == want
    page.close()
