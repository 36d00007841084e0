"""Study commands of the CLI: build ticket families, compute effects, draw figures and findings."""

from __future__ import annotations

import json
import sys
import time

from lthvp.commands.cli_common import open_store, progress_bar


def cmd_tickets(args) -> int:
    import dataclasses

    from lthvp.results.presets import get_preset
    from lthvp.tickets.families import family_dir
    from lthvp.tickets.imp import build_family

    preset = get_preset(args.preset)
    if preset.name == "paper":
        print("paper tickets are imported, one-shot pruned or built by IMP on your ImageFolder:\n"
              "  python -m lthvp paper one-shot|import|imp ...   (see docs/PAPER.md)", file=sys.stderr)
        return 2
    bars = {}

    def progress(label, step, total):
        bar = bars.get(label) or bars.setdefault(label, progress_bar(total, label))
        bar.n = step
        bar.refresh()
        if step == total:
            bar.close()

    t0 = time.time()
    out = args.out or family_dir(preset.family_dir, args.family)
    settings = dataclasses.replace(preset.imp, seed=args.family)
    info = build_family(preset, out, levels=args.levels, progress=progress, settings=settings)
    print(f"ticket family in {out} ({time.time() - t0:.0f} s)", file=sys.stderr)
    for arm in ("levels", "random_levels"):
        for level, row in sorted(info[arm].items(), key=lambda kv: int(kv[0])):
            print(f"{'random ' if arm != 'levels' else ''}level {level}: remaining "
                  f"{100 * row['remaining']['all_prunable']:.1f}% of prunable weights, "
                  f"source test accuracy {100 * row['source_test_accuracy']:.2f}%")
    return 0


def cmd_figures(args) -> int:
    from lthvp.ui.figures import update_readme, write_figures

    if args.out.exists() and not args.out.is_dir():  # checked before the bundle is read or anything is drawn
        raise ValueError(f"--out {args.out} is not a directory; name a directory for the figures and tables")
    if args.readme is not None and not args.readme.is_file():
        raise ValueError(f"--readme {args.readme} is not a file")
    written = write_figures(args.bundle, args.out, args.dataset)
    print("\n".join(str(p) for p in written))
    if args.readme:
        for block in ("findings", "subpopulations"):  # each generated block between its own markers
            text = next(p for p in written if p.name == f"{block}.md").read_text()
            if not update_readme(args.readme, text, block):
                print(f"{args.readme} has no <!-- {block}:start --> / <!-- {block}:end --> markers", file=sys.stderr)
                return 2
        print(args.readme)
    return 0


def cmd_effects(args) -> int:
    import pandas as pd

    from lthvp.analysis.effects import TEXT_COLUMNS, effects, replication_report
    from lthvp.results.store import flat_row, read_bundle

    if args.bundle:
        table = pd.DataFrame([flat_row(r.to_json()) for r in read_bundle(args.bundle)])
    else:
        table = open_store(args).table()
    present = sorted(set(table["dataset"])) if "dataset" in table else []
    if args.dataset is not None and args.dataset not in present:
        raise ValueError(f"no results for dataset {args.dataset!r}; the {'bundle' if args.bundle else 'store'} holds "
                         + (", ".join(present) if present else "no results"))
    all_runs = getattr(args, "all_runs", False)
    out = effects(table, args.metric, args.dataset, all_runs=all_runs)
    report = replication_report(table if args.dataset is None or table.empty else table[table["dataset"] == args.dataset])
    if not report.empty:  # what the planned analysis left out or lacks, never pooled silently (stderr: JSON stays clean)
        with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 80):
            print(("all runs used; the planned analysis would leave out or lack:\n" if all_runs else
                   "left out or incomplete (--all-runs uses everything):\n") + report.to_string(index=False),
                  file=sys.stderr)
    if args.json:
        rows = out.drop(columns=["metric"]).astype(object).where(out.drop(columns=["metric"]).notna(), None)
        print(json.dumps(rows.to_dict(orient="records"), indent=1))
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(out[TEXT_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0
