"""Time to first render of every dashboard page (AppTest, in-process, no browser).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_pages.py [--bundle cache/mini_digits.zip] [--synthetic 5000]

For each store (the shipped bundle; a synthetic store of N results cloned from it with varied
configs and metrics) and each page: 'cold' = Streamlit caches cleared (first visit after the
store changed), 'warm' = the same page again (cached results table). Also times one queue poll
(what the Run page's 2 s fragment does), which must not depend on the number of stored results.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
H1 = {"overview": "Lottery tickets", "sparsity": "Sparsity curves", "calibration": "Calibration",
      "prompts": "Prompts and label mappings", "subpopulations": "Subpopulations", "run": "Run experiments",
      "bundles": "Result bundles"}
PAGES = ["pages/overview.py", "pages/sparsity.py", "pages/calibration.py", "pages/prompts.py",
         "pages/subpopulations.py", "pages/run.py", "pages/bundles.py"]
SERVER_ONLY = ["pages/effects.py", "pages/run-detail.py"]  # timed server-side (run_detail opens one run by hash)


def synthetic_store(directory: Path, template_bundle: Path, n: int) -> None:
    from lthvp.results.config import RunConfig
    from lthvp.results.store import ResultStore, read_bundle

    templates = {r.config.method: r.to_json() for r in read_bundle(template_bundle)}
    store = ResultStore(directory)
    rng = random.Random(0)
    combos = [(ds, m, lv, sh, arm) for ds in ("digits", "fashion_mnist") for m in ("vp", "lp") for lv in range(9)
              for sh in (1, 2, 5, 10, "full") for arm in ("ticket", "random") if not (arm == "random" and lv == 0)]
    made = 0
    seed = 0
    with store.cache.transact():
        while made < n:
            for ds, m, lv, sh, arm in combos:
                if made >= n:
                    break
                t = templates.get(m) or next(iter(templates.values()))
                cfg = dict(t["config"], dataset=ds, method=m, level=lv, shots=sh, seed=seed, arm=arm)
                rec = dict(t, config=cfg, hash=RunConfig.from_dict(cfg).hash(), remaining_fraction=0.8 ** lv)
                rec["metrics"] = {k: max(0.0, v * (0.8 + 0.4 * rng.random())) for k, v in t["metrics"].items()}
                rec["metrics"]["accuracy"] = min(1.0, rec["metrics"]["accuracy"])
                rec["metrics"]["ece"] = min(1.0, rec["metrics"]["ece"])
                rec["metrics"]["mce"] = min(1.0, rec["metrics"]["mce"])
                store.put(rec)
                made += 1
            seed += 1


def time_pages(directory: Path, repeats: int = 1) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["LTHVP_STORE"] = str(directory)
    os.environ["LTHVP_AUTOSTART_WORKER"] = "0"
    out = {}
    from lthvp.results.store import ResultStore

    some_hash = ResultStore(directory).hashes()[0]
    for page in PAGES + SERVER_ONLY:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        at.switch_page(page)
        if page.endswith("run-detail.py"):
            at.query_params["hash"] = some_hash
        t0 = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t0
        assert not at.exception, [e.message for e in at.exception]
        warm = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - t0)
        out[page] = (cold, min(warm))
    return out


def time_poll(directory: Path) -> float:
    from lthvp.compute.jobs import JobQueue
    from lthvp.results.config import RunConfig
    from lthvp.results.store import ResultStore

    q, s = JobQueue.for_store(directory), ResultStore(directory)
    for seed in range(50):  # a realistic queue: 50 finished jobs
        sub = q.submit(RunConfig(dataset="digits", method="lp", level=0, shots=1, seed=1000 + seed, epochs=1))
        q.cancel(sub.job_id)
    t0 = time.perf_counter()
    for _ in range(20):
        q.reap()
        q.jobs()
        q.workers()
        _ = s.version
    return (time.perf_counter() - t0) / 20


def browser_times(directory: Path) -> dict:
    """Fresh server per store; a fresh browser tab per page; first visit of each page (cold caches)."""
    import signal
    import socket
    import subprocess
    import urllib.request

    from playwright.sync_api import expect, sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LTHVP_STORE=str(directory), LTHVP_AUTOSTART_WORKER="0")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        out = {}
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-gpu"])
            ctx = b.new_context(viewport={"width": 1400, "height": 1000})  # one profile: HTTP cache shared
            warm = ctx.new_page()  # the first visit pays the server's imports and the JS download once
            warm.goto(f"{url}/sparsity")
            expect(warm.locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible(timeout=120_000)
            warm.close()

            def ready(tab, name):
                expect(tab.get_by_test_id("stSidebar")).to_contain_text("results", timeout=60_000)
                tab.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=60_000)
                if name in ("overview", "sparsity", "calibration", "prompts", "subpopulations"):
                    expect(tab.locator("[data-testid='stPlotlyChart'] .main-svg").first).to_be_visible(timeout=60_000)
                else:
                    expect(tab.get_by_role("heading", level=1).first).to_be_visible(timeout=60_000)

            for page in PAGES:  # a new tab opened on a link (new session, cached JS)
                name = Path(page).stem
                tab = ctx.new_page()
                t0 = time.perf_counter()
                tab.goto(f"{url}/{name}")
                ready(tab, name)
                out[page] = [time.perf_counter() - t0]
                tab.close()
            tab = ctx.new_page()  # in-app navigation: click the page in the sidebar
            tab.goto(f"{url}/bundles")
            ready(tab, "bundles")
            titles = {"overview": "Overview", "sparsity": "Sparsity curves", "calibration": "Calibration",
                      "prompts": "Prompts", "subpopulations": "Subpopulations", "run": "Run", "bundles": "Bundles"}
            for page in PAGES:
                name = Path(page).stem
                t0 = time.perf_counter()
                tab.get_by_test_id("stSidebarNav").get_by_text(titles[name], exact=True).click()
                expect(tab.get_by_role("heading", level=1).first).to_contain_text(H1[name], timeout=60_000)
                ready(tab, name)
                out[page].append(time.perf_counter() - t0)
            b.close()
        return out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, default=REPO / "cache" / "mini_digits.zip")
    ap.add_argument("--synthetic", type=int, default=5000)
    ap.add_argument("--browser", action="store_true", help="also time first render in headless Chromium")
    args = ap.parse_args()
    if not args.bundle.exists():
        import importlib.util  # the tests' helper builds a small bundle of real runs when none is shipped

        spec = importlib.util.spec_from_file_location("test_helpers", REPO / "tests" / "helpers.py")
        helpers = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(helpers)
        args.bundle = helpers.page_bundle()
    from lthvp.results.store import ResultStore

    tmp = Path(tempfile.mkdtemp(prefix="lthvp-bench-"))
    shipped = tmp / "shipped"
    n_shipped = ResultStore(shipped).import_bundle(args.bundle)
    t0 = time.perf_counter()
    synthetic_store(tmp / "synthetic", args.bundle, args.synthetic)
    build = time.perf_counter() - t0
    # Every store the app opens first imports the shipped bundles it has not seen (once per store):
    # do that here, timed on its own, so a page's cold time is the page and not that one-time import.
    from lthvp.results.seeding import seed_store

    t0 = time.perf_counter()
    seed_store(ResultStore(tmp / "synthetic"))
    seeding = time.perf_counter() - t0
    seed_store(ResultStore(shipped))
    n_synthetic = len(ResultStore(tmp / "synthetic"))
    # warm the interpreter (imports of streamlit/plotly/pandas happen once per server process)
    time_pages(shipped)
    rows = {}
    for name, d in ((f"bundle ({n_shipped})", shipped), (f"synthetic ({n_synthetic})", tmp / "synthetic")):
        rows[name] = (time_pages(d), time_poll(d))
    names = list(rows)
    print(f"\nbundle {args.bundle.name}; synthetic store built in {build:.1f} s, then seeded with the shipped "
          f"bundles in {seeding:.1f} s (once per store); python {sys.version.split()[0]}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; cpus {os.cpu_count()}\n")
    print("| page | " + " | ".join(f"{n} cold s | {n} warm s" for n in names) + " |")
    print("|---|" + "---|---|" * len(names))
    for page in PAGES + SERVER_ONLY:
        cells = []
        for n in names:
            cold, warm = rows[n][0][page]
            cells += [f"{cold:.2f}", f"{warm:.2f}"]
        print(f"| {Path(page).stem} | " + " | ".join(cells) + " |")
    print("| queue poll, 50 jobs (reap + jobs + workers + store version) | " +
          " | ".join(f"{1000 * rows[n][1]:.2f} ms | " for n in names) + " |")
    if args.browser:
        print("\nbrowser (streamlit run + headless Chromium): seconds until the page's script finished and "
              "its first chart is drawn; 'new tab' = open the page's URL in a new tab (new session), "
              "'in app' = click it in the sidebar\n")
        print("| page | " + " | ".join(f"{n} new tab | {n} in app" for n in names) + " |")
        print("|---|" + "---|---|" * len(names))
        res = {n: browser_times(d) for n, d in zip(names, (shipped, tmp / "synthetic"))}
        for page in PAGES:
            print(f"| {Path(page).stem} | " + " | ".join(f"{res[n][page][0]:.2f} | {res[n][page][1]:.2f}"
                                                       for n in names) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
