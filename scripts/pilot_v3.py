"""Pilot of the v3 mini study: choose the many-class source on *validation* only.

Each candidate source (lthvp.data.sources: ``glyphs``, ``fractals``) gets a dense ResNet-20
(128 classes) trained with the v3 source recipe; then, on both targets, VP (ILM over all 128
source classes), mapping-only (the same mapping, prompt frozen) and LP at matched input run at
10 shots (seeds 0, 1) and full data (seed 0). The rule, fixed before any number exists: the
source whose dense VP beats mapping-only and chance (10%) by the widest margin on *both*
targets (the smaller of its two targets' margins, VP - max(map, chance), in validation accuracy
at the best round) while its LP stays sound (validation accuracy >= 70% on full data on both
targets). Test accuracy is stored (the runner always evaluates) but never read here.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/pilot_v3.py train --source glyphs     # one per core
    OMP_NUM_THREADS=1 .venv/bin/python scripts/pilot_v3.py runs --source glyphs
    .venv/bin/python scripts/pilot_v3.py report                                       # markdown table
"""

from __future__ import annotations

import argparse
import json
import time

from lthvp.compute.runner import run
from lthvp.data.sources import GENERATORS
from lthvp.paths import REPO_ROOT
from lthvp.results.config import RunConfig
from lthvp.results.presets import MINI, PRESETS, IMPSettings, Preset
from lthvp.results.store import ResultStore
from lthvp.tickets.imp import build_family

ROOT = REPO_ROOT / "cache" / "runtime" / "pilot_v3"
TARGETS = ("digits", "fashion_mnist")
CELLS = ((10, 0), (10, 1), ("full", 0))  # (shots, seed)
LP_SOUND = 0.70


def source_recipe(source: str) -> IMPSettings:
    """The v3 source recipe: every generated training image (34,560 after the validation
    hold-out), 6 epochs of cosine SGD from 0.1, batch 128."""
    return IMPSettings(source_dataset=source, train_images=10 ** 6, epochs=6, lr=0.1, levels=0, random_levels=())


def pilot_preset(source: str) -> Preset:
    name = f"pilot-{source}"
    preset = Preset(name=name, arch="resnet20_synth", family_dir=ROOT / source, canvas=32,
                    vp_epochs=MINI.vp_epochs, vp_batch=MINI.vp_batch, lp_epochs=MINI.lp_epochs, lp_batch=MINI.lp_batch,
                    image_sizes={"*": 24}, vp_steps={1: 1000, 2: 1000, 5: 1000, 10: 1000, "full": 1000},
                    fewshot_val=True, family_vp_lr=0.1, imp=source_recipe(source))
    PRESETS[name] = preset
    return preset


def train(source: str) -> None:
    preset = pilot_preset(source)
    t0 = time.time()
    info = build_family(preset, ROOT / source / "family_0", levels=0,
                        progress=lambda label, step, total: print(f"{label} {step}/{total}", flush=True)
                        if step % 100 == 0 else None)
    print(json.dumps({"source": source, "seconds": round(time.time() - t0, 1),
                      "dense_test_accuracy": info["levels"]["0"]["source_test_accuracy"],
                      "curve": info.get("dense_curve")}), flush=True)


def configs(source: str):
    preset = pilot_preset(source)
    for target in TARGETS:
        for shots, seed in CELLS:
            for method in ("vp", "map", "lp"):
                yield RunConfig(preset=preset.name, dataset=target, method=method, shots=shots, seed=seed, family=0,
                                lp_input="matched" if method == "lp" else "full")


def runs(source: str) -> None:
    store = ResultStore(ROOT / "store")
    for cfg in configs(source):
        t0 = time.time()
        rec = run(cfg, store).record
        print(f"{cfg.dataset} {cfg.method} {cfg.shots} seed {cfg.seed}: best val "
              f"{best_val(rec):.3f} ({time.time() - t0:.0f} s)", flush=True)


def best_val(record: dict) -> float:
    """Validation accuracy at the chosen round/epoch (the checkpoint the runner kept)."""
    curves = record.get("curves") or []
    vals = [c["val_acc"] for c in curves if "val_acc" in c]
    return max(vals) if vals else float("nan")


def report() -> None:
    store = ResultStore(ROOT / "store")
    rows = {}
    for source in GENERATORS:
        for cfg in configs(source):
            rec = store.get(run_hash(cfg))
            if rec is not None:
                rows.setdefault((source, cfg.dataset, cfg.method, str(cfg.shots)), []).append(best_val(rec))
    print("| source | target | shots | VP | map | LP (matched) | VP - max(map, chance) |")
    print("|---|---|---|---|---|---|---|")
    margins = {}
    for source in GENERATORS:
        for target in TARGETS:
            for shots in ("10", "full"):
                cell = {m: rows.get((source, target, m, shots)) for m in ("vp", "map", "lp")}
                if not all(cell.values()):
                    continue
                mean = {m: sum(v) / len(v) for m, v in cell.items()}
                margin = mean["vp"] - max(mean["map"], 0.10)
                margins.setdefault(source, []).append(margin)
                print(f"| {source} | {target} | {shots} | {100 * mean['vp']:.1f} | {100 * mean['map']:.1f} | "
                      f"{100 * mean['lp']:.1f} | {100 * margin:+.1f} |")
    for source, m in margins.items():
        print(f"\n{source}: smallest margin {100 * min(m):+.1f} points over {len(m)} cells")


def run_hash(cfg: RunConfig) -> str:
    from lthvp.results.presets import resolve

    return resolve(cfg).hash()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=("train", "runs", "report"))
    parser.add_argument("--source", choices=sorted(GENERATORS))
    args = parser.parse_args()
    if args.stage == "report":
        return report()
    if not args.source:
        parser.error("--source is required for train and runs")
    (train if args.stage == "train" else runs)(args.source)


if __name__ == "__main__":
    main()
