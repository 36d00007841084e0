"""What the study pays per cell: a fixed slice of the grid run the old way and the new way, in one run.

Old way: every config on its own (``run``), fp32. New way: the seeds of a cell trained together
(``run_many`` -> ``run_group``), optionally with ``--precision bf16`` once the equivalence study
admits it. Each way runs into its own empty store; CPU-seconds are the process's CPU time (all
threads) per cell, wall seconds beside them. Also reports the whole-epoch comparison against the
ILM-VP-style loop (benchmarks/bench_vp.py) if asked.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_slice.py --preset pilot-glyphs --family 0 \\
        --levels 0 --arm-levels oneshot_noft:4 --targets digits fashion_mnist --shots 1 5 10 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lthvp.compute.runner import run, run_many
from lthvp.results.config import RunConfig
from lthvp.results.store import ResultStore


def slice_configs(a, precision: str = "fp32") -> list[RunConfig]:
    cells = [("ticket", lv) for lv in a.levels] + [tuple(x.split(":")) for x in a.arm_levels]
    return [RunConfig(preset=a.preset, family=a.family, arm=arm, level=int(lv), dataset=t, method="vp", shots=k, seed=s,
                      precision=precision, steps=a.steps)
            for arm, lv in cells for t in a.targets for k in a.shots for s in a.seeds]


def timed(fn) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c0, time.perf_counter() - w0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="mini3")
    ap.add_argument("--family", type=int, default=0)
    ap.add_argument("--levels", type=int, nargs="+", default=[0])
    ap.add_argument("--arm-levels", nargs="*", default=[], metavar="ARM:LEVEL")
    ap.add_argument("--targets", nargs="+", default=["digits", "fashion_mnist"])
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=None, help="VP step budget (default: the preset's)")
    ap.add_argument("--bf16", action="store_true", help="also time the new way with precision bf16")
    a = ap.parse_args(argv)
    if a.preset.startswith("pilot-"):  # the pilot's presets are registered by its script
        import importlib.util

        spec = importlib.util.spec_from_file_location("pilot_v3", Path(__file__).parent.parent / "scripts" / "pilot_v3.py")
        pilot = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pilot)
        pilot.pilot_preset(a.preset.removeprefix("pilot-"))
    old = slice_configs(a)
    cells = len(old) // len(a.seeds)
    ways = {"old: one run at a time, fp32": lambda store: [run(c, store) for c in old],
            "new: seeds of a cell together, fp32": lambda store: run_many(old, store)}
    if a.bf16:
        ways["new: together, bf16"] = lambda store: run_many(slice_configs(a, "bf16"), store)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, fn) in enumerate(ways.items()):
            store = ResultStore(Path(tmp) / f"s{i}")
            cpu, wall = timed(lambda: fn(store))
            rows.append((name, cpu, wall))
    base = rows[0][1]
    print(f"\nslice: {len(old)} VP runs = {cells} cells x {len(a.seeds)} seeds ({a.preset}, family {a.family}, "
          f"steps {a.steps or 'preset'}, torch threads {__import__('torch').get_num_threads()})\n")
    print("| way | CPU-s per cell | wall s per cell | CPU vs old |")
    print("|---|---|---|---|")
    for name, cpu, wall in rows:
        print(f"| {name} | {cpu / cells:.1f} | {wall / cells:.1f} | {cpu / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
