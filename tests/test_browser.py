"""Real browser: `streamlit run app.py` on a free port against a temp store, every page opened in
headless Chromium (Playwright + /usr/bin/chromium), charts rendered, URL state, and a tiny job
submitted from the Run page and seen done. Screenshots go to artifacts/browser/ (git-ignored)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO, page_bundle

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real server and Chromium: minutes
CHROMIUM = os.environ.get("LTHVP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-gpu"]
SHOTS = REPO / "artifacts" / "browser"
PAGES = {"overview": True, "sparsity": True, "calibration": True, "effects": True, "run-detail": False, "prompts": True,
         "run": False, "bundles": False}


def page_url(url: str, name: str) -> str:
    """The default page (overview) lives at the root; /overview is not a page URL."""
    return f"{url}/" if name == "overview" else f"{url}/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def require_browser() -> None:
    """Skip unless the system Chromium and Playwright are there."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright")


def start_streamlit(log_dir: Path, **env) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free loopback port with ``env`` added, once it reports healthy."""
    port = free_port()
    log = open(log_dir / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1", **env), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    pytest.fail("streamlit did not become healthy: " + Path(log.name).read_text()[-2000:])


def stop_streamlit(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_browser()
    from lthvp.results.store import ResultStore

    directory = tmp_path_factory.mktemp("browser") / "store"
    store = ResultStore(directory)
    store.import_bundle(page_bundle())
    proc, url = start_streamlit(tmp_path_factory.mktemp("log"), LTHVP_STORE=str(directory), LTHVP_AUTOSTART_WORKER="1",
                                LTHVP_WORKER_THREADS="1")
    yield url, store, directory
    stop_streamlit(proc)
    from lthvp.compute.jobs import JobQueue

    for w in JobQueue.for_store(directory).workers():  # a worker the app started for this test
        try:
            os.kill(w["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def settle(page, timeout=60_000):
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stAppViewContainer")).to_be_visible(timeout=timeout)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout)
    # st.navigation (not the pages/ folder) drives the sidebar once app.py has run
    expect(page.get_by_test_id("stSidebar")).to_contain_text("Sparsity curves", timeout=timeout)
    expect(page.get_by_test_id("stSidebar")).to_contain_text("results", timeout=timeout)
    page.wait_for_timeout(300)


def test_url_state_both_ways(server, browser):
    from playwright.sync_api import expect

    url, _, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/sparsity?metric=ece")  # the very first request to a fresh server is a deep link
    settle(page)
    expect(page.get_by_role("combobox", name="Metric")).to_have_value("ece")
    page.get_by_test_id("stRadio").filter(has_text="One line per").get_by_text("method", exact=True).click()
    settle(page)
    expect(page).to_have_url(__import__("re").compile(r"by=method"))
    assert "metric=ece" in page.url
    # the link reproduces the view in a fresh tab
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    other.goto(page.url)
    settle(other)
    expect(other.get_by_test_id("stRadio").filter(has_text="One line per").locator("input[type=radio]").nth(1)) \
        .to_be_checked()
    other.screenshot(path=str(SHOTS / "sparsity_from_url.png"), full_page=True)
    other.close()
    page.close()


def test_every_page_renders_charts(server, browser):
    from playwright.sync_api import expect

    url, store, _ = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    for name, charts in PAGES.items():
        page.goto(page_url(url, name))
        settle(page)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        if charts:
            expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=30_000)
            expect(page.locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.close()


def default_view_family(store):
    """A family the dashboard's default view counts: the legacy study (None) where the sidebar
    defaults to it (the v1 bundle), else family 0 of the replicated families (v2)."""
    from lthvp.ui.family_select import default_choice

    return None if default_choice(store.table()) == "legacy" else 0


def whole_number(n: int) -> re.Pattern:
    """``n`` as a number of its own in a metric's text (2 must not match 296)."""
    return re.compile(rf"(?<![0-9]){n}(?![0-9])")


def test_submit_tiny_job_and_see_result(server, browser):
    from playwright.sync_api import expect

    url, store, directory = server
    before = len(store)
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{url}/run?r_levels=L0&r_methods=LP&r_shots=1-shot&r_seeds=5&r_epochs=1&user=browser-test")
    settle(page)
    expect(page.get_by_text("1 to train")).to_be_visible()
    page.get_by_role("button", name="Submit 1 run").click()
    expect(page.get_by_text("Queued 1 job(s) for browser-test")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("the app started one")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(SHOTS / "run_submitted.png"), full_page=True)
    # the queue fragment polls; the worker imports torch, trains one epoch, writes the result
    expect(page.get_by_text("done", exact=True).first).to_be_visible(timeout=180_000)
    expect(page.get_by_text("1 already in the store")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(SHOTS / "run_done.png"), full_page=True)
    assert len(store) == before + 1
    # a second submission right away (within 60 s of the automatic worker start, which used to leave
    # it queued forever while the first worker exits): it is picked up and finishes too
    started = time.time()
    page.goto(f"{url}/run?r_levels=L0&r_methods=LP&r_shots=1-shot&r_seeds=6&r_epochs=1&user=browser-test")
    settle(page)
    page.get_by_role("button", name="Submit 1 run").click()
    expect(page.get_by_text("Queued 1 job(s) for browser-test")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("1 already in the store")).to_be_visible(timeout=180_000)
    assert len(store) == before + 2 and time.time() - started < 180
    page.goto(f"{url}/")
    settle(page)
    expect(page.get_by_test_id("stSidebar")).to_contain_text(f"{before + 2} results")
    # the two new runs are family-0 tickets: picking family 0 shows them with that family's others
    # (never pooled with the legacy study)
    family_0 = int((store.table()["family"] == 0).sum())
    page.goto(f"{url}/?family=family+0")
    settle(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="runs")).to_contain_text(whole_number(family_0))
    page.close()


def test_open_page_learns_of_new_results(server, browser):
    """A page left open notices a changed store (the sidebar polls the version) and redraws."""
    from playwright.sync_api import expect

    from lthvp.compute.jobs import JobQueue
    from helpers import make_record

    url, store, directory = server
    queue, deadline = JobQueue.for_store(directory), time.time() + 120
    while time.time() < deadline and (lambda c: c["queued"] + c["running"])(queue.counts()):
        time.sleep(1)  # a job from an earlier test still running would change the store by itself
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/")
    settle(page)
    n = len(store.hashes())
    expect(page.get_by_test_id("stSidebar")).to_contain_text(f"{n} results")
    runs = page.get_by_test_id("stMetric").filter(has_text="runs")  # the default view's run count
    expect(runs).to_have_count(1)
    shown = int(runs.inner_text().split()[-1])
    store.put(make_record(41, method="lp", family=default_view_family(store)))  # a run the default view counts
    expect(page.get_by_test_id("stSidebar")).to_contain_text(f"{n + 1} results", timeout=30_000)
    expect(runs).to_contain_text(whole_number(shown + 1), timeout=30_000)  # redrawn
    page.close()


def test_a_chart_point_opens_its_run_page(server, browser):
    """Sparsity page, *Every run* on: clicking one run's point opens /run-detail?hash=<that run>."""
    import re

    from playwright.sync_api import expect

    url, store, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/sparsity")
    settle(page)
    page.get_by_test_id("stCheckbox").filter(has_text="Every run").locator("label").click()
    settle(page)
    point = page.locator("[data-testid='stPlotlyChart'] .scatterlayer path.point[d^='M2.5,0']").first
    expect(point).to_be_visible(timeout=30_000)
    point.click(force=True)
    expect(page).to_have_url(re.compile(r"/run-detail\?hash=[0-9a-f]{16}"), timeout=30_000)
    settle(page)
    key = re.search(r"hash=([0-9a-f]{16})", page.url).group(1)
    assert store.has(key)
    expect(page.get_by_test_id("stMain")).to_contain_text(key)
    page.screenshot(path=str(SHOTS / "run_from_chart.png"), full_page=True)
    page.close()


def test_a_chart_downloads_as_png(server, browser):
    """Overview: the PNG button under the headline chart renders the figure on click (kaleido + Chromium
    on the server) and the browser receives a real PNG of the fixed export width."""
    import struct

    url, _, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(f"{url}/")
    settle(page)
    with page.expect_download(timeout=60_000) as info:
        page.get_by_test_id("stDownloadButton").get_by_role("button", name="PNG").first.click()
    download = info.value
    assert download.suggested_filename == "lthvp_headline.png"
    data = Path(download.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = struct.unpack(">I", data[16:20])[0]  # IHDR: width at 2x scale
    assert width == 2400, width
    page.close()


def test_no_request_leaves_the_app_and_no_console_error(server, browser):
    """Offline server: every page loads only from the app's own origin, and the console stays clean.
    Allowed: Streamlit's own first probe of ``/<page>/_stcore/...`` on a deep link, which 404s before
    it asks the root (streamlit/streamlit#7074, open upstream), and the console line it causes."""
    import re

    url, _, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside, errors, bad_http = [], [], []
    probe = re.compile(re.escape(url) + r"/[a-z-]+/_stcore/(host-config|health)$")
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
    page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("response", lambda r: bad_http.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    for name in PAGES:
        page.goto(page_url(url, name))
        settle(page)
    page.wait_for_timeout(1000)
    page.close()
    assert not outside, sorted(set(outside))[:10]
    unexplained = [b for b in bad_http if not probe.search(b.split(": ", 1)[1])]
    assert not unexplained, unexplained[:10]
    status_404 = "Failed to load resource: the server responded with a status of 404"
    assert [e for e in errors if status_404 not in e] == [], errors[:10]
    assert sum(status_404 in e for e in errors) <= len(bad_http)


def test_links_hold_after_more_results(server, browser):
    """A link copied from each results page carries every data-dependent choice, so it reopens the
    same widgets in a fresh browser context after results arrive that move those defaults."""
    from playwright.sync_api import expect

    from helpers import make_record

    url, store, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()

    def widgets(p):  # each select's label and shown value(s)
        main = p.get_by_test_id("stMain")
        return [(w.inner_text(), w.get_by_role("combobox").input_value()) for w in main.get_by_test_id("stSelectbox").all()] + \
               [" ".join(w.inner_text().split()) for w in main.get_by_test_id("stMultiSelect").all()]

    links, shown = {}, {}
    for name in ("sparsity", "calibration", "effects", "prompts"):
        page.goto(page_url(url, name))
        settle(page)
        links[name], shown[name] = page.url, widgets(page)
    assert "shot=" in links["calibration"] and "level=" in links["calibration"] and "ds=" in links["calibration"]
    # results that move the data-dependent defaults: a new best-covered shot count (one the view
    # does not show now, whatever earlier tests added) and a new last level
    shots = 10 if dict(w for w in shown["calibration"] if isinstance(w, tuple))["Shots per class"] != "10-shot" else 2
    family = default_view_family(store)
    for seed in range(40, 64):
        store.put(make_record(seed, method="vp", level=8, shots=shots, family=family))
        store.put(make_record(seed, method="lp", level=8, shots=shots, family=family))
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    fresh.goto(page_url(url, "calibration"))  # without the link's values the page now opens elsewhere
    settle(fresh)
    assert widgets(fresh) != shown["calibration"], "the added results did not move the defaults: the test proves nothing"
    for name, link in links.items():
        fresh.goto(link)
        settle(fresh)
        expect(fresh.get_by_test_id("stException")).to_have_count(0)
        assert widgets(fresh) == shown[name], name
    fresh.context.close()
    context.close()


def test_a_phone_width_layout_has_no_sideways_scroll(server, browser):
    """At 390 px (a phone) every page fits the width: columns stack, charts shrink to the viewport."""
    url, _, _ = server
    page = browser.new_page(viewport={"width": 390, "height": 844})
    wide = {}
    for name in PAGES:
        page.goto(page_url(url, name))
        settle(page)
        page.wait_for_timeout(500)
        width = page.evaluate("document.querySelector('[data-testid=stMain]').scrollWidth")
        charts = page.evaluate("Array.from(document.querySelectorAll('[data-testid=stPlotlyChart]'))"
                               ".map(e => e.getBoundingClientRect().right)")
        if width > 390 or any(right > 391 for right in charts):
            wide[name] = (width, charts)
        page.screenshot(path=str(SHOTS / f"phone_{name}.png"), full_page=True)
    page.close()
    assert not wide, wide


def test_dark_browser_gets_a_dark_app_and_dark_charts(server, browser):
    """No theme is pinned in .streamlit/config.toml: a browser that prefers dark gets the dark theme,
    and the charts follow it (dashboard.chart_theme)."""
    url, _, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme="dark")
    page.goto(page_url(url, "sparsity"))
    settle(page)
    page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=30_000)
    page.wait_for_timeout(1000)
    app_bg = page.evaluate("getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor")
    chart_bg = page.evaluate("document.querySelector('.js-plotly-plot')._fullLayout.paper_bgcolor")

    def dark(css):  # "rgb(r, g, b)", "rgba(...)" or "#rrggbb"
        import re

        if css.startswith("#"):
            r, g, b = (int(css[i:i + 2], 16) for i in (1, 3, 5))
        else:
            r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
        return r + g + b < 3 * 100

    page.screenshot(path=str(SHOTS / "dark_sparsity.png"), full_page=True)
    page.close()
    assert dark(app_bg), app_bg
    assert dark(chart_bg) or chart_bg.replace(" ", "") in ("rgba(0,0,0,0)", "transparent"), chart_bg  # dark or see-through
