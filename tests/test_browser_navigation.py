"""Real browser (issue 26, items 5 and 6): browser history (one entry per view change, Back restores
the previous view after a page change and after a widget change), link values the page could not
keep named on the page, an unknown path said on the page, the in-app dark theme with readable text
(WCAG contrast of every visible text node and every chart label), and a 390 px phone width where
no two labels of a chart overlap. Screenshots: artifacts/browser/nav_*.png (git-ignored)."""

import re

import pytest

from helpers import page_bundle
from test_browser import ARGS, CHROMIUM, SHOTS, require_browser, settle, start_streamlit, stop_streamlit

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHART_PAGES = ["", "sparsity", "calibration", "effects", "subpopulations", "prompts"]
OTHER_PAGES = ["run-detail", "run", "bundles", "compare"]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    require_browser()
    from lthvp.results.store import ResultStore

    directory = tmp_path_factory.mktemp("nav") / "store"
    ResultStore(directory).import_bundle(page_bundle())
    proc, url = start_streamlit(tmp_path_factory.mktemp("navlog"), LTHVP_STORE=str(directory),
                                LTHVP_AUTOSTART_WORKER="0")
    yield url
    stop_streamlit(proc)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def history_length(page) -> int:
    return page.evaluate("window.history.length")


def test_back_restores_the_previous_view(app_url, chromium):
    """Overview -> Sparsity is one entry, a widget change one more; Back undoes each, Forward redoes."""
    from playwright.sync_api import expect

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/")
    settle(page)
    overview, start = page.url, history_length(page)
    page.get_by_test_id("stSidebarNav").get_by_text("Sparsity curves").click()
    settle(page)
    expect(page.get_by_role("combobox", name="Metric")).to_have_value("accuracy")
    sparsity = page.url
    assert "/sparsity?" in sparsity and history_length(page) == start + 1, (sparsity, history_length(page))
    page.get_by_role("combobox", name="Metric").click()
    page.get_by_role("option", name="ece", exact=True).click()
    settle(page)
    expect(page.get_by_role("combobox", name="Metric")).to_have_value("ece")
    assert "metric=ece" in page.url and history_length(page) == start + 2
    page.go_back()
    settle(page)
    expect(page.get_by_role("combobox", name="Metric")).to_have_value("accuracy")  # the widget, not only the URL
    assert page.url == sparsity
    page.go_back()
    settle(page)
    expect(page.get_by_role("heading", name="Lottery tickets × visual prompting")).to_be_visible()
    assert page.url == overview
    page.go_forward()
    settle(page)
    page.go_forward()
    settle(page)
    expect(page.get_by_role("combobox", name="Metric")).to_have_value("ece")
    assert history_length(page) == start + 2  # going back and forth made no entries
    page.close()


def test_link_values_the_page_cannot_keep_are_named(app_url, chromium):
    from playwright.sync_api import expect

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/sparsity?metric=bogus&view=random&ds=nope")
    settle(page)
    alerts = page.get_by_test_id("stAlert")
    expect(alerts.filter(has_text="metric=bogus")).to_have_count(1)
    expect(alerts.filter(has_text="view=random")).to_have_count(1)
    expect(alerts.filter(has_text="ds=nope")).to_have_count(1)
    expect(page.get_by_role("combobox", name="Metric")).to_have_value("accuracy")
    page.screenshot(path=str(SHOTS / "nav_bad_link.png"))
    page.close()


def test_an_unknown_path_says_so_and_links_the_main_page(app_url, chromium):
    from playwright.sync_api import expect

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/overview")
    settle(page)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_test_id("stAlert").filter(has_text="There is no page /overview")).to_be_visible()
    link = main.get_by_role("link", name=re.compile("Main page"))
    expect(link).to_be_visible()
    page.goto(f"{app_url}/no-such-page")
    settle(page)
    expect(page.get_by_test_id("stMain").get_by_test_id("stAlert").filter(has_text="/no-such-page")).to_be_visible()
    page.close()


CONTRAST_JS = """
() => {
  const parse = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const v = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number); return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; };
  const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const over = (top, under) => { const a = top[3]; return [0, 1, 2].map(i => a * top[i] + (1 - a) * under[i]).concat([1]); };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const background = (el) => { const layers = [];
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) layers.push(c); if (c && c[3] >= 1) break; }
    let bg = [255, 255, 255, 1]; for (const l of layers.reverse()) bg = over(l, bg); return bg; };
  const faded = (el) => { if (el.closest('[disabled], [aria-disabled=true]')) return true;  // inactive: exempt (WCAG 1.4.3)
    for (let e = el; e && e.nodeType === 1; e = e.parentElement)
    if (Number(getComputedStyle(e).opacity) < 1) return true; return false; };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement, text = n.textContent.trim();
    if (!text || !el || el.closest('svg, script, style, noscript, [aria-hidden=true]') || faded(el)) continue;
    const r = el.getBoundingClientRect(), st = getComputedStyle(el);
    if (r.width < 1 || r.height < 1 || st.visibility !== 'visible' || st.display === 'none') continue;
    const fg = parse(st.color); if (!fg) continue;
    const bg = background(el), size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = (size >= 24 || (size >= 18.66 && bold)) ? 3 : 4.5, got = ratio(over(fg, bg), bg);
    if (got < need) out.push(`${text.slice(0, 40)}: ${got.toFixed(2)} < ${need} (${st.color} on rgb(${bg.slice(0, 3).map(Math.round)}))`);
  }
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const box = gd.getBoundingClientRect(); if (box.width < 10 || !gd._fullLayout) continue;
    const paper = over(parse(gd._fullLayout.paper_bgcolor) || [0, 0, 0, 0], background(gd));
    for (const t of gd.querySelectorAll('text')) {
      const text = t.textContent.trim(), r = t.getBoundingClientRect();
      if (!text || r.width < 1 || t.closest('.hoverlayer')) continue;
      const st = getComputedStyle(t); const fg = parse(st.fill); if (!fg) continue;
      fg[3] *= Number(st.fillOpacity || 1);
      let bg = paper; const rect = t.closest('.annotation') && t.closest('.annotation').querySelector('rect.bg');
      if (rect) { const c = parse(getComputedStyle(rect).fill);
        if (c) { c[3] *= Number(getComputedStyle(rect).fillOpacity || 1); bg = over(c, paper); } }
      const size = parseFloat(st.fontSize), need = size >= 24 ? 3 : 4.5, got = ratio(over(fg, bg), bg);
      if (got < need) out.push(`chart text ${text.slice(0, 40)}: ${got.toFixed(2)} < ${need} `
                               + `(${st.fill} on rgb(${bg.slice(0, 3).map(Math.round)}))`);
    }
  }
  return out;
}
"""


def test_dark_theme_switch_keeps_every_text_readable(app_url, chromium):
    """The sidebar's switch turns the app and its charts dark (in a light-preferring browser);
    on every page every visible text node and chart label keeps WCAG contrast (4.5:1, 3:1 large)."""
    from playwright.sync_api import expect

    page = chromium.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light").new_page()
    page.goto(f"{app_url}/")
    settle(page)
    page.get_by_test_id("stSidebar").get_by_text("Dark theme", exact=True).click()
    page.wait_for_load_state()
    settle(page)
    unreadable = {}
    for name in CHART_PAGES + OTHER_PAGES:
        page.goto(f"{app_url}/{name}")
        settle(page)
        app_bg = page.evaluate("getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor")
        assert sum(int(v) for v in re.findall(r"\d+", app_bg)[:3]) < 300, (name, app_bg)  # still dark on every page
        if name in CHART_PAGES:
            expect(page.locator("[data-testid='stPlotlyChart'] .main-svg >> visible=true").first).to_be_visible(timeout=30_000)
            page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / f"nav_dark_{name or 'overview'}.png"), full_page=True)
        if bad := page.evaluate(CONTRAST_JS):
            unreadable[name or "overview"] = bad[:8]
    page.context.close()
    assert not unreadable, unreadable


OVERLAP_JS = """
() => {
  const out = [];
  document.querySelectorAll('.js-plotly-plot').forEach((gd, i) => {
    const box = gd.getBoundingClientRect(); if (box.width < 10) return;
    const texts = Array.from(gd.querySelectorAll('text')).filter(t => t.textContent.trim() && !t.closest('.hoverlayer'))
      .map(t => [t.textContent.trim(), t.getBoundingClientRect()]).filter(([, r]) => r.width > 0 && r.height > 0);
    for (let a = 0; a < texts.length; a++) for (let b = a + 1; b < texts.length; b++) {
      const [ta, p] = texts[a], [tb, q] = texts[b];
      const w = Math.min(p.right, q.right) - Math.max(p.left, q.left), h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
      if (w > 1 && h > 1) out.push(`chart ${i}: '${ta.slice(0, 30)}' x '${tb.slice(0, 30)}'`);
    }
  });
  return out;
}
"""


def test_phone_width_charts_have_no_overlapping_labels(app_url, chromium):
    """At 390 px a figure's panels stack one per row; within every chart no two text labels overlap
    (their bounding boxes do not intersect) and no chart is wider than the screen."""
    from playwright.sync_api import expect

    page = chromium.new_page(viewport={"width": 390, "height": 844})
    overlaps = {}
    for name in CHART_PAGES:
        page.goto(f"{app_url}/{name}")
        settle(page)
        expect(page.locator("[data-testid='stPlotlyChart'] .main-svg >> visible=true").first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)
        if bad := page.evaluate(OVERLAP_JS):
            overlaps[name or "overview"] = bad[:6]
        widths = page.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot'))"
                               ".map(e => e.getBoundingClientRect().right)")
        assert all(right <= 391 for right in widths), (name, widths)
        page.screenshot(path=str(SHOTS / f"nav_phone_{name or 'overview'}.png"), full_page=True)
    page.close()
    assert not overlaps, overlaps
