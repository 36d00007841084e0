"""What the v3 study costs on this machine: a projection from measured unit costs, per component.

The unit costs are measurements, not guesses (docs/BENCHMARKS.md gives their sources):

* VP, per image of a training step (forward and backward, plus the run's share of mapping,
  validation and test passes): 3.4 ms fp32 at one thread, from ``benchmarks/bench_slice.py``'s
  old way (76.1 CPU-s per 5-seed cell of 200 steps over 1, 5 and 10 shots); bf16 x0.49 from the
  same run (the equivalence study rejected it for v3: docs/BENCHMARKS.md);
* images per run: ``images_seen`` of the pilot's stage-2 records (a 1,000-step budget at 10 shots
  runs 800 steps of 32 images; full digits 121,866 at 1,000 steps, Fashion 162,000);
* a source training (one IMP level, a random member, the dense model): 1,080 SGD steps at 0.45 s
  (the families' unloaded rate); a one-shot member's fine-tuning: one epoch, 270 steps;
* mapping-only and LP: a few CPU-seconds each (they reuse cached features and train no prompt).

    python scripts/study_v3_budget.py   # the v3 grid of docs/STUDY.md (fp32, full data 4,000 steps)
    python scripts/study_v3_budget.py --families 8 --full-levels 4 --oneshot-levels 3  # every cut
"""

from __future__ import annotations

import argparse

VP_S_PER_IMAGE = 0.0034
BF16_RATIO = 0.49
KSHOT_IMAGES = {1: 10 * 1000, 5: 32 * 1000, 10: 32 * 800}  # images seen at the 1,000-step budget
FULL_IMAGES_PER_1000_STEPS = {"digits": 121_866, "fashion_mnist_1k": 162_000}
SOURCE_STEP_S, SOURCE_STEPS, FINETUNE_STEPS = 0.45, 1080, 270
CHEAP_RUN_S = 5.0  # mapping-only or LP


def vp_seconds(a: argparse.Namespace, target: str, shots, seeds: int) -> float:
    """CPU-seconds of ``seeds`` VP runs of one cell at ``shots`` (an int or "full") on ``target``."""
    per_image = VP_S_PER_IMAGE * (BF16_RATIO if a.bf16 else 1.0)
    images = FULL_IMAGES_PER_1000_STEPS[target] * a.full_steps / 1000 if shots == "full" else KSHOT_IMAGES[shots]
    return seeds * images * per_image


def project(a: argparse.Namespace) -> list[tuple[str, int, float]]:
    """Rows (component, VP runs or trainings, CPU-hours) for the grid the arguments describe."""
    targets, kshots = list(FULL_IMAGES_PER_1000_STEPS), list(KSHOT_IMAGES)
    cells = a.levels  # IMP cells, level 0 included
    full_cells = cells if a.full_levels is None else a.full_levels

    def cost(n_cells, shots, seeds):  # (runs, CPU-s) over families and targets
        return (a.families * len(targets) * n_cells * seeds,
                a.families * n_cells * sum(vp_seconds(a, t, shots, seeds) for t in targets))

    kshot = [cost(cells, k, a.kshot_seeds) for k in kshots]
    full = cost(full_cells, "full", a.full_seeds)
    oneshot = [cost(a.oneshot_levels, 5, a.kshot_seeds), cost(a.oneshot_levels, "full", a.full_seeds)]
    random = [cost(a.random, 5, a.kshot_seeds), cost(a.random, "full", a.full_seeds)]
    quant = [cost(4, k, a.kshot_seeds) for k in kshots] + [cost(4, "full", a.full_seeds)]  # int8/int4 x L0/deepest
    vp_runs = sum(n for n, _ in kshot + [full] + oneshot + random + quant)
    trainings = a.families * (a.deepest + 1 + a.random_built)
    family_s = (trainings * SOURCE_STEPS + a.families * a.oneshot_levels * FINETUNE_STEPS) * SOURCE_STEP_S

    def total(parts):
        return sum(n for n, _ in parts), sum(s for _, s in parts) / 3600

    return [("ticket families (dense, IMP levels, random members, one-shot fine-tuning)", trainings, family_s / 3600),
            ("VP at 1, 5 and 10 shots", *total(kshot)),
            (f"VP on full data ({a.full_steps}-step budget)", *total([full])),
            ("random arm VP at 5 shots and full data", *total(random)),
            ("one-shot arm VP at 5 shots and full data", *total(oneshot)),
            ("quant8 / quant4 VP at level 0 and the deepest level", *total(quant)),
            ("mapping-only and LP (2 per VP run)", 2 * vp_runs, 2 * vp_runs * CHEAP_RUN_S / 3600)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", type=int, default=10)
    ap.add_argument("--levels", type=int, default=7, help="IMP cells of the grid, level 0 included")
    ap.add_argument("--deepest", type=int, default=9, help="the deepest IMP level built (all are built)")
    ap.add_argument("--random", type=int, default=4, help="random-arm cells of the grid (at 5 shots and full data)")
    ap.add_argument("--random-built", type=int, default=4, help="random members built per family")
    ap.add_argument("--oneshot-levels", type=int, default=6)
    ap.add_argument("--kshot-seeds", type=int, default=5)
    ap.add_argument("--full-seeds", type=int, default=2)
    ap.add_argument("--full-levels", type=int, default=None, help="cells with full data (default: every cell)")
    ap.add_argument("--full-steps", type=int, default=4000, help="full-data VP step budget (the pilot chose 4,000)")
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args(argv)
    rows = project(a)
    print("| component | VP runs / trainings | CPU-hours |\n|---|---|---|")
    for name, n, hours in rows:
        print(f"| {name} | {n:,} | {hours:.1f} |")
    print(f"| **total** | | **{sum(h for _, _, h in rows):.1f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
