"""Real browser, access and the network: `streamlit run app.py` in headless Chromium.

- No request leaves the machine: every page, each opened as the very first request of a fresh
  server (the case in which Streamlit once fetched the page's icon from fonts.gstatic.com), loads
  only from 127.0.0.1.
- With an operator secret in a temporary secrets file (``STREAMLIT_SECRETS_FILES``; the repo's and
  the user's secrets are not read), a browser session without it cannot queue, cancel, import or
  delete, and the audit log lists the actions of a session that typed it.
"""

import re
import shutil
from unittest import mock
from urllib.parse import urlparse

import pytest

from helpers import make_record, page_bundle
from test_browser import ARGS, CHROMIUM, SHOTS, require_browser, settle, start_streamlit, stop_streamlit

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LOCAL = {"127.0.0.1", "localhost"}
SECRET = "correct horse battery staple"
RUN_LINK = "/run?r_seeds=7&r_methods=LP&r_epochs=1&r_levels=L0"


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def page_paths() -> list[str]:
    """Every page's URL path as app.py's navigation declares it ("" for the default page)."""
    import streamlit as st

    from lthvp.ui import app_frame

    with mock.patch.object(st, "Page", lambda page, **kw: "" if kw.get("default") else kw["url_path"]):
        return app_frame.app_pages()


def watch_outside(context) -> list[str]:
    """Record (and refuse) every request of ``context`` to a host other than this machine."""
    outside = []

    def refuse(route):
        outside.append(route.request.url)
        route.abort()

    context.route(lambda url: urlparse(url).scheme in ("http", "https", "ws", "wss")
                  and urlparse(url).hostname not in LOCAL, refuse)
    context.on("request", lambda r: outside.append(r.url) if urlparse(r.url).scheme in ("http", "https")
               and urlparse(r.url).hostname not in LOCAL else None)
    return outside


@pytest.fixture(scope="module")
def page_store(tmp_path_factory):
    require_browser()
    from lthvp.results.store import ResultStore

    directory = tmp_path_factory.mktemp("browser_access") / "store"
    ResultStore(directory).import_bundle(page_bundle())
    return directory


def test_no_request_leaves_the_machine_from_any_page(page_store, browser, tmp_path_factory):
    paths = page_paths()
    assert len(paths) >= 9 and "" in paths and "bundles" in paths
    outside, not_found = {}, []
    for path in paths:  # a fresh server each time: the page is the first request it serves
        proc, url = start_streamlit(tmp_path_factory.mktemp("log_net"), LTHVP_STORE=str(page_store),
                                    LTHVP_BUNDLES=str(tmp_path_factory.mktemp("no_bundles")),
                                    LTHVP_AUTOSTART_WORKER="0")
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            seen = watch_outside(context)
            page = context.new_page()
            page.goto(f"{url}/{path}")
            settle(page)
            page.wait_for_timeout(1500)  # late requests: icons, fonts, images
            outside[path or "overview"] = sorted(set(seen))
            if "Page not found" in page.inner_text("body"):  # the first deep link finds its page
                not_found.append(path)
            context.close()
        finally:
            stop_streamlit(proc)
    assert all(not v for v in outside.values()), {k: v for k, v in outside.items() if v}
    assert not not_found, f"a fresh server's first deep link showed 'Page not found': {not_found}"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A server whose secrets name an operator secret, over a store with one queued job."""
    require_browser()
    from lthvp.compute.jobs import JobQueue
    from lthvp.results.config import RunConfig
    from lthvp.results.store import ResultStore

    root = tmp_path_factory.mktemp("guarded")
    store = ResultStore(root / "store")
    store.import_bundle(page_bundle())
    queued = RunConfig.from_dict(make_record(3, method="lp")["config"])
    JobQueue.for_store(store.directory).submit(queued, user="someone", store=store)
    (root / "secrets").mkdir()
    secrets = root / "secrets" / "secrets.toml"
    secrets.write_text(f'[lthvp]\noperator_secret = "{SECRET}"\n')
    extra = root / "extra.zip"  # one result the store does not hold, to import
    other = ResultStore(root / "other")
    rec = make_record(11, method="lp")
    other.put(rec)
    other.export_bundle(extra, [rec["hash"]])
    shutil.rmtree(root / "other")
    proc, url = start_streamlit(tmp_path_factory.mktemp("log_guarded"), LTHVP_STORE=str(store.directory),
                                LTHVP_BUNDLES=str(tmp_path_factory.mktemp("no_bundles")), LTHVP_AUTOSTART_WORKER="0",
                                STREAMLIT_SECRETS_FILES=str(secrets))
    yield url, store, queued.hash(), extra, rec["hash"]
    stop_streamlit(proc)


def go(page, name: str) -> None:
    """Move inside the app (same session), as a user would: through the sidebar."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    settle(page)


def test_a_session_without_the_secret_cannot_write(guarded, browser):
    from playwright.sync_api import expect

    from lthvp.compute.jobs import JobQueue
    from lthvp.results.audit_log import AuditLog

    url, store, queued, _, _ = guarded
    n, jobs_before = len(store), JobQueue.for_store(store.directory).jobs()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url + RUN_LINK)
    settle(page)
    main = page.get_by_test_id("stMain")
    expect(main).to_contain_text("Viewing only")
    expect(main).to_contain_text("1 to train")
    expect(page.get_by_role("button", name=re.compile(r"^Submit 1 run"))).to_be_disabled()
    expect(page.locator(f".st-key-job_{queued}").get_by_role("button", name="Cancel")).to_be_disabled()
    # a wrong secret unlocks nothing
    page.get_by_text("Unlock writes for this session").click()
    page.get_by_label("Your name (recorded with every write)").fill("mallory")
    page.get_by_label("Operator secret").fill("not the secret at all")
    page.get_by_role("button", name="Unlock").click()
    settle(page)
    expect(main).to_contain_text("That is not the operator secret")
    expect(page.get_by_role("button", name=re.compile(r"^Submit 1 run"))).to_be_disabled()
    go(page, "Bundles")
    expect(main).to_contain_text("Importing needs an operator")
    expect(page.locator("input[type=file]")).to_have_count(0)  # no uploader: no upload can even be sent
    expect(page.get_by_role("button", name="Delete")).to_be_disabled()
    page.screenshot(path=str(SHOTS / "bundles_viewer.png"), full_page=True)
    context.close()
    assert len(store) == n and JobQueue.for_store(store.directory).jobs() == jobs_before
    entries, problems = AuditLog(store.directory).read()
    assert problems == [] and [(e.who, e.action, e.detail) for e in entries] == [
        ("mallory", "unlock", "refused: wrong operator secret")]


def test_a_session_with_the_secret_writes_and_the_audit_log_lists_it(guarded, browser):
    from playwright.sync_api import expect

    from lthvp.compute.jobs import JobQueue
    from lthvp.results.audit_log import AuditLog

    url, store, queued, extra, extra_hash = guarded
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(url + RUN_LINK)
    settle(page)
    main = page.get_by_test_id("stMain")
    page.get_by_text("Unlock writes for this session").click()
    page.get_by_label("Your name (recorded with every write)").fill("ada")
    page.get_by_label("Operator secret").fill(SECRET)
    page.get_by_role("button", name="Unlock").click()
    settle(page)
    expect(main).to_contain_text("Operator: ada (operator secret)")
    page.get_by_role("button", name=re.compile(r"^Submit 1 run")).click()
    settle(page)
    expect(main).to_contain_text("Queued 1 job")
    page.locator(f".st-key-job_{queued}").get_by_role("button", name="Cancel").click()
    settle(page)
    queue = JobQueue.for_store(store.directory)
    assert queue.get(queued)["state"] == "cancelled"
    (mine,) = [j for j in queue.jobs() if j["config"]["seed"] == 7]

    go(page, "Bundles")  # the same session: still unlocked
    page.locator("input[type=file]").set_input_files(str(extra))
    expect(main).to_contain_text("1 added, 0 skipped", timeout=60_000)
    assert store.has(extra_hash)
    victim = next(h for h in store.hashes() if h != extra_hash)
    page.get_by_label(re.compile(r"^Result hashes")).fill(victim)
    page.get_by_role("button", name="Delete").click()
    settle(page)
    expect(main).to_contain_text("Deleted 1 result")
    assert not store.has(victim)
    audit = page.get_by_test_id("stDataFrame").last
    audit.scroll_into_view_if_needed()
    expect(audit).to_be_visible()
    page.screenshot(path=str(SHOTS / "bundles_audit_log.png"), full_page=True)
    context.close()

    entries, problems = AuditLog(store.directory).read()
    assert problems == []
    mine_actions = [(e.action, e.detail) for e in reversed(entries) if e.who == "ada"]
    assert [a for a, _ in mine_actions] == ["unlock", "queue", "cancel", "import", "import result", "delete"]
    details = dict(mine_actions)
    assert mine["id"] in details["queue"] and queued in details["cancel"] and details["delete"] == victim
    assert "extra.zip" in details["import"] and extra_hash in details["import result"]
    assert all(e.how == "secret" and e.client for e in entries)
