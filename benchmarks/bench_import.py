"""Importing a bundle into an empty store: what every fresh store (CLI, worker, app, most tests)
pays once for the shipped study. Times the store's write path as it is (a shallow view of each
record) against the deep copy it used before (``dataclasses.asdict``), in one run, alternating.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_import.py [--bundle cache/mini_digits.zip]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from lthvp.results.run_record import RunRecord  # noqa: E402
from lthvp.results.store import ResultStore  # noqa: E402


def time_import(bundle: Path) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ResultStore(d).import_bundle_report(bundle)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, default=REPO / "cache" / "mini_digits.zip")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    shallow = RunRecord.serialisable
    times = {"shallow view (now)": [], "deep copy (asdict, before)": []}
    for _ in range(args.repeats):
        for name in times:
            RunRecord.serialisable = shallow if name.startswith("shallow") else RunRecord.to_json
            times[name].append(time_import(args.bundle))
    RunRecord.serialisable = shallow
    base = statistics.median(times["deep copy (asdict, before)"])
    size = args.bundle.stat().st_size / 1e6
    print(f"\n{args.bundle.name} ({size:.1f} MB), {args.repeats} imports each, alternating\n")
    print("| write path | median s | min s | before / this |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {base / statistics.median(ts):.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
