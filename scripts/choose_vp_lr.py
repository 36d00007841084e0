"""Choose the mini preset's VP learning rate on the *validation* split (never test).

Grid on level 0 of family 0, shots {1, 5, 10, full}, seeds {0, 1} for k-shot and seed 0 for
full data, the v2 step budget; runs go through the store (resumable: stored runs are reused).
Prints a markdown table of the best-round validation accuracy per (lr, shots), the mean over
shots used for the choice, and how much validation accuracy the last half of the budget added
(a flat validation curve means the budget suffices).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/choose_vp_lr.py [--store cache/runtime/lr_grid]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


import numpy as np  # noqa: E402

from lthvp.compute.runner import run  # noqa: E402
from lthvp.results.config import RunConfig  # noqa: E402
from lthvp.results.store import ResultStore  # noqa: E402

GRID = (0.01, 0.03, 0.1, 0.3)
SHOTS = (1, 5, 10, "full")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", type=Path, default=Path("cache/runtime/lr_grid"))
    parser.add_argument("--family", type=int, default=0)
    args = parser.parse_args()
    store = ResultStore(args.store)
    table = {}
    for lr in GRID:
        for shots in SHOTS:
            for seed in ((0,) if shots == "full" else (0, 1)):
                rec = run(RunConfig(family=args.family, method="vp", level=0, shots=shots, seed=seed, lr=lr), store).record
                curve = rec["curves"]
                best = max(r["val_acc"] for r in curve)
                half = max(r["val_acc"] for r in curve[:max(1, len(curve) // 2)])
                table.setdefault((lr, str(shots)), []).append((best, best - half, rec["prompt_shift"] * 255))
                print(f"lr {lr} shots {shots} seed {seed}: best val acc {best:.3f} (last half added {best - half:+.3f}), "
                      f"border moved {rec['prompt_shift'] * 255:.1f}/255, {rec['timings']['total_seconds']:.0f} s",
                      file=sys.stderr, flush=True)
    print("| lr | " + " | ".join(f"{s}-shot" if s != "full" else "full" for s in SHOTS) + " | mean over shots |")
    print("|---" * (len(SHOTS) + 2) + "|")
    means = {}
    for lr in GRID:
        cells = [np.mean([v[0] for v in table[(lr, str(s))]]) for s in SHOTS]
        means[lr] = float(np.mean(cells))
        print(f"| {lr} | " + " | ".join(f"{100 * c:.1f}%" for c in cells) + f" | {100 * means[lr]:.1f}% |")
    chosen = max(GRID, key=lambda lr: (means[lr], -lr))
    print(f"\nchosen lr (highest mean best-round validation accuracy): {chosen}")
    print("\n| lr | shots | val acc gained in the last half of the budget (mean) | border moved from grey (mean, /255) |")
    print("|---|---|---|---|")
    for (lr, s), vals in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        print(f"| {lr} | {s} | {100 * np.mean([v[1] for v in vals]):+.1f} points | {np.mean([v[2] for v in vals]):.1f} |")


if __name__ == "__main__":
    main()
