"""Pilot of the v3 mini study, stage 2: VP's learning rate, image size and step budget, chosen on
*validation* only, on the dense model of family 0 (``mini3``, level 0), before any main-sweep run.

The rule, written before any stage-2 number exists (docs/SOURCES.md repeats it):

* **2a, lr and image size** at 10 shots (seeds 0 and 1), both v3 targets, the 1,000-step budget:
  coordinate search, first lr in {0.03, 0.1, 0.3} at image 24, then image in {20, 28} at the best
  lr. Score = mean over (target, seed) of the validation accuracy at the kept round. The best
  score wins; a setting within 0.5 points of the reference (lr 0.1, image 24) does not replace it.
* **2b, the step budget** at the chosen lr and image size, separately for k-shot (10 shots, seeds
  0 and 1; budgets 1,000 and 2,000) and full data (seed 0; budgets 1,000, 2,000 and 4,000): the
  smallest budget whose validation accuracy is within 1.0 point of the best budget's on *both*
  targets. Comparing whole runs at several budgets (each with ILM-VP's own schedule) judges the
  plateau without the schedule's late learning-rate drops forcing a flat curve inside one run.

Test accuracy is computed by the runner and stored, never read here. Runs go to
``cache/runtime/pilot_v3/stage2`` (not committed); the records report the steps that ran.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/pilot_v3_stage2.py lr --target digits   # one per core
    OMP_NUM_THREADS=1 .venv/bin/python scripts/pilot_v3_stage2.py image --target digits
    OMP_NUM_THREADS=1 .venv/bin/python scripts/pilot_v3_stage2.py budget --target digits
    .venv/bin/python scripts/pilot_v3_stage2.py report
"""

from __future__ import annotations

import argparse
import time

from lthvp.compute.runner import run, run_group
from lthvp.paths import REPO_ROOT
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve
from lthvp.results.store import ResultStore

STORE = REPO_ROOT / "cache" / "runtime" / "pilot_v3" / "stage2"
TARGETS = ("digits", "fashion_mnist_1k")
REFERENCE = (0.1, 24)
LRS, IMAGES = (0.03, 0.1, 0.3), (20, 28)
KSHOT_BUDGETS, FULL_BUDGETS = (1000, 2000), (1000, 2000, 4000)
TIE, PLATEAU = 0.005, 0.010


def cfg(target, shots, seed, lr, image, steps) -> RunConfig:
    return RunConfig(preset="mini3", dataset=target, method="vp", shots=shots, seed=seed, family=0, level=0,
                     lr=lr, image_size=image, steps=steps)


def kshot(target, lr, image, steps=1000) -> list[RunConfig]:
    return [cfg(target, 10, seed, lr, image, steps) for seed in (0, 1)]


def val_acc(record: dict) -> float:
    """Validation accuracy at the kept round (the runner keeps the best validation round)."""
    return max(c["val_acc"] for c in record["curves"] if c.get("val_acc") is not None)


def ensure(configs: list[RunConfig], store: ResultStore) -> list[dict]:
    todo = [c for c in configs if store.get(resolve(c).hash()) is None]
    t0 = time.time()
    if len(todo) > 1:
        run_group(todo, store)
    elif todo:
        run(todo[0], store)
    records = [store.get(resolve(c).hash()) for c in configs]
    if todo:
        print(f"  {len(todo)} run(s), {time.time() - t0:.0f} s: " + ", ".join(
            f"seed {r['config']['seed']} val {100 * val_acc(r):.1f}% ({r['steps']} steps)" for r in records), flush=True)
    return records


def score(records) -> float:
    return sum(val_acc(r) for r in records) / len(records)


def choose(scores: dict) -> tuple:
    """The best-scoring setting, unless it is within TIE of the reference (which then stays)."""
    best = max(scores, key=scores.get)
    if REFERENCE in scores and scores[best] - scores[REFERENCE] <= TIE:
        return REFERENCE
    return best


def lr_scores(store) -> dict:
    return {(lr, 24): score([r for t in TARGETS for r in ensure(kshot(t, lr, 24), store)]) for lr in LRS}


def chosen_lr(store) -> float:
    return choose(lr_scores(store))[0]


def image_scores(store) -> dict:
    lr = chosen_lr(store)
    scores = {(lr, 24): lr_scores(store)[(lr, 24)]}
    for image in IMAGES:
        scores[(lr, image)] = score([r for t in TARGETS for r in ensure(kshot(t, lr, image), store)])
    return scores


def stage(name: str, target: str | None) -> None:
    store = ResultStore(STORE)
    targets = (target,) if target else TARGETS
    if name == "lr":
        for t in targets:
            for lr in LRS:
                print(f"{t} lr {lr} image 24", flush=True)
                ensure(kshot(t, lr, 24), store)
    elif name == "image":
        lr = chosen_lr(store)
        for t in targets:
            for image in IMAGES:
                print(f"{t} lr {lr} image {image}", flush=True)
                ensure(kshot(t, lr, image), store)
    else:
        lr, image = choose(image_scores(store))
        for t in targets:
            for steps in KSHOT_BUDGETS:
                print(f"{t} 10-shot {steps} steps", flush=True)
                ensure(kshot(t, lr, image, steps), store)
            for steps in FULL_BUDGETS:
                print(f"{t} full {steps} steps", flush=True)
                ensure([cfg(t, "full", 0, lr, image, steps)], store)


def plateau(curves_by_budget: dict) -> int:
    """The smallest budget within PLATEAU of the best budget on every target."""
    for steps in sorted(curves_by_budget):
        if all(curves_by_budget[steps][t] >= max(b[t] for b in curves_by_budget.values()) - PLATEAU for t in TARGETS):
            return steps
    raise AssertionError("unreachable: the best budget is within the margin of itself")


def report() -> None:
    store = ResultStore(STORE)
    print("| stage | lr | image | score (val %, mean of 10-shot seeds 0-1 x 2 targets) |\n|---|---|---|---|")
    lrs = lr_scores(store)
    for (lr, image), s in lrs.items():
        print(f"| 2a lr | {lr} | {image} | {100 * s:.1f} |")
    images = image_scores(store)
    for (lr, image), s in images.items():
        if image != 24:
            print(f"| 2a image | {lr} | {image} | {100 * s:.1f} |")
    lr, image = choose(images)
    print(f"\nchosen: lr {lr}, image {image}\n")
    print("| target | data | budget | steps run | val % |\n|---|---|---|---|---|")
    budgets = {}
    for regime, steps_list in (("10-shot", KSHOT_BUDGETS), ("full", FULL_BUDGETS)):
        for steps in steps_list:
            for t in TARGETS:
                recs = ensure(kshot(t, lr, image, steps) if regime == "10-shot"
                              else [cfg(t, "full", 0, lr, image, steps)], store)
                budgets.setdefault(regime, {}).setdefault(steps, {})[t] = score(recs)
                print(f"| {t} | {regime} | {steps} | {'/'.join(str(r['steps']) for r in recs)} | {100 * score(recs):.1f} |")
    for regime, by_budget in budgets.items():
        print(f"\n{regime}: budget {plateau(by_budget)} steps")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=("lr", "image", "budget", "report"))
    parser.add_argument("--target", choices=TARGETS)
    args = parser.parse_args()
    report() if args.stage == "report" else stage(args.stage, args.target)


if __name__ == "__main__":
    main()
