"""Pre-specified equivalence study: does CPU bf16 autocast change any estimate the study reports?

Each config runs twice, ``precision="fp32"`` and ``precision="bf16"`` (VP's training steps and
its mapping/validation passes under bf16 autocast; the test pass stays fp32), everything else
equal, through the store (resumable: stored runs are reused). The design and the decision rule
are fixed here and in docs/BENCHMARKS.md before any pair exists:

* pairs: every (family, level, target, shots, seed) of the grid below, VP only (mapping-only
  and LP run no bf16 steps): defaults 2 families x {L0, deepest} x 2 targets x {1, 5, 10} shots x
  2 seeds + full data seed 0 = 56 pairs (>= 40);
* TOST at +-1.0 accuracy point and +-1.0 ECE point on the paired mean difference (bf16 - fp32),
  alpha 0.05 each; and the difference (bf16 - fp32) in the L0 - deepest accuracy contrast per
  (family, target, shots, seed), with its 90% interval, TOST at +-1.0 point as well;
* decision: bf16 becomes the v3 protocol on CPU only if all three are equivalent.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bf16_equivalence.py --families 0 --shots 1 5 10  # one per core
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bf16_equivalence.py --families 0 1 --shots 1 5 10  # the table
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bf16_equivalence.py   # all 56 pairs

Run on 2026-12-04 (k-shot pairs only; docs/BENCHMARKS.md): not equivalent, fp32 stays.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from lthvp.analysis.equivalence import best_case_p, tost_paired
from lthvp.compute.runner import run
from lthvp.results.config import RunConfig
from lthvp.results.shots import FULL
from lthvp.results.shots import arg as shots_arg
from lthvp.results.store import ResultStore

MARGIN_POINTS = 1.0


def plan(preset: str, families, levels, targets, shots, seeds, full_seeds) -> list[RunConfig]:
    """Every pair's fp32 config, k-shot cells before full-data ones (the cheap part finishes first)."""
    cells = [(k, s) for k in shots if k != FULL for s in seeds] + [(FULL, s) for s in full_seeds if FULL in shots]
    return [RunConfig(preset=preset, family=family, level=level, dataset=target, method="vp", shots=k, seed=s)
            for k, s in cells for family, level, target in itertools.product(families, levels, targets)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="mini3")
    ap.add_argument("--families", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--levels", type=int, nargs=2, default=[0, 6], metavar=("DENSE", "DEEPEST"))
    ap.add_argument("--targets", nargs="+", default=["digits", "fashion_mnist_1k"])
    ap.add_argument("--shots", type=shots_arg, nargs="+", default=[1, 5, 10, FULL],
                    help="run a subset now and the rest later: stored runs are reused, and the table covers "
                         "the pairs of this call")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="k-shot seeds")
    ap.add_argument("--full-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--store", type=Path, default=Path("cache/runtime/bf16_equivalence"))
    ap.add_argument("--planned", type=int, nargs=2, default=[56, 28], metavar=("PAIRS", "CONTRASTS"),
                    help="the design's pair and contrast counts: when fewer ran, the table adds the best TOST p "
                         "the missing ones could still reach")
    a = ap.parse_args(argv)
    store = ResultStore(a.store)
    pairs = {}
    for cfg in plan(a.preset, a.families, a.levels, a.targets, a.shots, a.seeds, a.full_seeds):
        fp32 = run(cfg, store).record["metrics"]
        bf16 = run(cfg.replace(precision="bf16"), store).record["metrics"]
        pairs[(cfg.family, cfg.level, cfg.dataset, str(cfg.shots), cfg.seed)] = (fp32, bf16)
        print(f"{cfg.family} L{cfg.level} {cfg.dataset} {cfg.shots} s{cfg.seed}: acc {100 * fp32['accuracy']:.2f} -> "
              f"{100 * bf16['accuracy']:.2f}, ece {100 * fp32['ece']:.2f} -> {100 * bf16['ece']:.2f}", flush=True)
    rows = {m: [100 * (b[m] - f[m]) for f, b in pairs.values()] for m in ("accuracy", "ece")}
    dense, deep = a.levels
    contrast = []
    for (fam, level, target, shots, seed), (f, b) in pairs.items():
        if level == dense and (fam, deep, target, shots, seed) in pairs:
            f2, b2 = pairs[(fam, deep, target, shots, seed)]
            contrast.append(100 * ((b["accuracy"] - b2["accuracy"]) - (f["accuracy"] - f2["accuracy"])))
    print(f"\n{len(pairs)} pairs; margins +-{MARGIN_POINTS} point\n")
    print("| quantity (bf16 - fp32, points) | n | mean | SD | 90% CI | TOST p | equivalent | best p, all planned |")
    print("|---|---|---|---|---|---|---|---|")
    verdicts = []
    for name, d, planned in (("accuracy", rows["accuracy"], a.planned[0]), ("ECE", rows["ece"], a.planned[0]),
                             (f"L{dense} - L{deep} accuracy", contrast, a.planned[1])):
        r = tost_paired(d, MARGIN_POINTS)
        verdicts.append(r.equivalent())
        best = best_case_p(d, max(planned - len(d), 0), MARGIN_POINTS)
        print(f"| {name} | {r.n} | {r.mean:+.3f} | {r.sd:.3f} | [{r.ci90_low:+.3f}, {r.ci90_high:+.3f}] | "
              f"{r.p:.2g} | {'yes' if r.equivalent() else 'no'} | {best:.2g} |")
    print("\ndecision:", "bf16 is equivalent on every quantity" if all(verdicts) else "keep fp32")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
