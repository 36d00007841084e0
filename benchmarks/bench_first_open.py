"""First open of the dashboard on a fresh store, before and after this tree's changes, in one run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_first_open.py [--ref HEAD] [--rounds 2] [--page overview]

'before' is ``git archive <ref>`` unpacked in a temporary folder (read-only use of git), 'after'
is this working tree. For each, rounds alternating: a fresh empty store, ``streamlit run app.py``
started and healthy, then a new headless-Chromium tab opens the page and we time (from the
navigation) the first text in the main area (a progress message or the page itself) and the first
chart drawn. The first open imports the shipped bundles (1,260 results) into the store.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = """() => { const m = document.querySelector("[data-testid='stMain']");
  return {text: !!m && m.innerText.trim().length > 0,
          chart: !!document.querySelector("[data-testid='stMain'] [data-testid='stPlotlyChart'] .main-svg")}; }"""


def export(ref: str, into: Path) -> Path:
    data = subprocess.run(["git", "archive", "--format=tar", ref], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def first_open(tree: Path, browser, page: str, work: Path) -> tuple[float, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = Path(tempfile.mkdtemp(prefix="store-", dir=work))
    env = dict(os.environ, LTHVP_STORE=str(store), LTHVP_BUNDLES=str(tree / "cache"), LTHVP_AUTOSTART_WORKER="0",
               PYTHONPATH=str(tree))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        t0 = time.perf_counter()
        tab.goto(f"{url}/{page}", wait_until="commit")
        text = chart = None
        while chart is None and time.perf_counter() - t0 < 180:
            seen = tab.evaluate(PROBE)
            now = time.perf_counter() - t0
            if seen["text"] and text is None:
                text = now
            if seen["chart"]:
                chart = now
            time.sleep(0.05)
        tab.context.close()
        return text or float("nan"), chart or float("nan")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="HEAD")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--page", default="overview")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lthvp-first-open-"))
    trees = {f"before ({args.ref})": export(args.ref, work / "before"), "after (working tree)": REPO}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-gpu"])
        for _ in range(args.rounds):
            for name, tree in trees.items():
                times[name].append(first_open(tree, browser, args.page, work))
        browser.close()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"\nfirst open of /{args.page} on a fresh store (imports the shipped bundles); {args.rounds} rounds, "
          f"alternating; load average {' '.join(load)}; cpus {os.cpu_count()}\n")
    print("| tree | first text in the main area, s | first chart, s |")
    print("|---|---|---|")
    for name, rows in times.items():
        text = ", ".join(f"{t:.1f}" for t, _ in rows)
        chart = ", ".join(f"{c:.1f}" for _, c in rows)
        print(f"| {name} | {text} (median {statistics.median(t for t, _ in rows):.1f}) | {chart} "
              f"(median {statistics.median(c for _, c in rows):.1f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
