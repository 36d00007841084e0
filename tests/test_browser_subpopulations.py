"""Real browser, Subpopulations page (the test_browser.py server and Chromium, its own module-scoped
instances): a deep link opens the view it names, the per-class chart draws, the exemplar gallery
shows real test images enlarged without smoothing, a gallery choice goes into the URL, and the
per-image CSV downloads with one row per test image and method."""

import re
from pathlib import Path

import pytest

from test_browser import SHOTS, browser, server, settle  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_subpopulations_page_shows_real_images_and_keeps_its_choices_in_the_url(server, browser):  # noqa: F811
    from playwright.sync_api import expect

    from lthvp.analysis import subpop_report as R
    from lthvp.analysis.subpopulations import gallery_order, test_split

    url, store, _ = server
    table = store.table()
    ticket = table[(table["arm"] == "ticket") & (table["level"] > 0) & table["method"].isin(["vp", "lp"])]
    shots = "full" if "full" in set(ticket["shots"].astype(str)) else str(ticket["shots"].iloc[0])
    level = int(ticket[ticket["shots"].astype(str) == shots]["level"].max())
    _, labels, names = test_split("digits")
    res = R.analyse(table, store.get, labels, names, "digits", shots, ["vp", "lp"], level)
    if {"vp", "lp"} - set(res["summaries"]):
        pytest.skip("the page bundle has no VP and LP pairs with per-sample predictions")
    shot_label = "full+data" if shots == "full" else f"{shots}-shot"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(f"{url}/subpopulations?ds=digits&shot={shot_label}&level=L{level}&methods=VP&methods=LP")
    settle(page)
    main = page.get_by_test_id("stMain")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(main.locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible(timeout=30_000)
    # the per-class chart's x axis carries the class names
    expect(main.locator("[data-testid='stPlotlyChart'] .xtick").first).to_be_visible()
    # Venn counts as the library computes them
    venn = res["overlap"]
    for label, n in (("VP only", venn["a_only"]), ("both", venn["both"]), ("LP only", venn["b_only"])):
        expect(main.get_by_test_id("stMetric").filter(has_text=label)).to_contain_text(str(n))
    # the gallery: real images, each pixel a block (served enlarged, drawn at its own size)
    images = main.locator("[data-testid='stImage'] img")
    expect(images.first).to_be_visible(timeout=30_000)
    n_vp = res["summaries"]["vp"]["n_exemplars"]
    assert images.count() == min(48, n_vp)
    first = images.first
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first.element_handle())
    natural = first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    shown = first.evaluate("img => [img.getBoundingClientRect().width, img.getBoundingClientRect().height]")
    assert natural == [96, 96] and shown == [96, 96], (natural, shown)
    # the first image is the most consistent VP flip, and its caption says so
    lead = gallery_order(res["images"][res["images"]["method"] == "vp"]).iloc[0]
    expect(main.get_by_test_id("stText").filter(has_text=f"#{int(lead['image'])} true")).to_be_visible()
    # the image is the test split's own: pixels equal the stored test image, enlarged 12x
    import io

    import numpy as np
    from PIL import Image

    x, _, _ = test_split("digits")
    png = first.evaluate("img => fetch(img.src).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)))")
    pixels = np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGB"))
    assert (pixels[::12, ::12] == x[int(lead["image"])]).all()
    page.screenshot(path=str(SHOTS / "subpopulations.png"), full_page=True)
    # a gallery choice lands in the URL, and the gallery changes with it
    main.get_by_test_id("stRadio").filter(has_text="Gallery").get_by_text("LP only", exact=True).click()
    settle(page)
    expect(page).to_have_url(re.compile(r"gallery=LP\+only"))
    expect(images).to_have_count(min(48, venn["b_only"]), timeout=30_000)
    # the per-image CSV: every test image, for each method
    with page.expect_download(timeout=60_000) as info:
        main.get_by_test_id("stDownloadButton").get_by_role("button", name="Download per-image CSV").click()
    lines = Path(info.value.path()).read_text().splitlines()
    assert lines[0].startswith("method,image,true,true_name") and len(lines) == 1 + 2 * len(labels)
    # the link reproduces the view in a fresh tab
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    other.goto(page.url)
    settle(other)
    expect(other.get_by_test_id("stRadio").filter(has_text="Gallery").get_by_role("radio", name="LP only")) \
        .to_be_checked()
    other.close()
    page.close()
