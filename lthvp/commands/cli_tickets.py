"""``python -m lthvp tickets``: build or resume a ticket family (IMP with rewinding and its random
arm) or one of its compression arms (lthvp/tickets/arms.py)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lthvp.commands.cli_common import positive_int
from lthvp.results.config import ARMS


def _levels(text: str) -> int | list[int]:
    """``8`` (up to level 8, as before) or a list/range for the compression arms: ``1,3,5``, ``2-6``."""
    if text.strip().isdigit():
        return int(text)
    try:
        out = []
        for part in text.split(","):
            a, _, b = part.partition("-")
            out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels must be N, a list (1,3,5) or a range (2-6), got {text!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"levels must be >= 0, got {text!r}")
    return sorted(set(out))


def cmd_tickets(args) -> int:
    """IMP (``--arm ticket``, with its random arm) or one compression arm of an existing family."""
    from lthvp.commands.cli_study import cmd_tickets as build_imp

    if args.arm == "ticket":
        if isinstance(args.levels, list):
            raise ValueError("IMP builds its levels in order: give --levels N (the highest level)")
        return build_imp(args)
    from lthvp.results.presets import get_preset
    from lthvp.tickets.arms import FINETUNE_EPOCHS, build_arm
    from lthvp.tickets.families import family_dir

    preset = get_preset(args.preset)
    if preset.name == "paper":
        raise ValueError("paper families get compression arms with `python -m lthvp paper compress --arm ...` "
                         "(see docs/PAPER.md)")
    out = args.out or family_dir(preset.family_dir, args.family)
    levels = args.levels
    if isinstance(levels, int):
        levels = list(range(0 if args.arm.startswith("quant") else 1, levels + 1))
    t0 = time.time()
    info = build_arm(out, args.arm, levels, finetune_epochs=args.finetune_epochs or FINETUNE_EPOCHS,
                     progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(f"{args.arm} arm of the family in {out} ({time.time() - t0:.0f} s)", file=sys.stderr)
    for level, row in sorted(info[f"{args.arm}_levels"].items(), key=lambda kv: int(kv[0])):
        acc = row.get("source_test_accuracy")
        print(f"{args.arm} level {level}: remaining {100 * row['remaining']['all_prunable']:.1f}% of prunable weights"
              + (f", {row['bits_per_weight']} bits/weight" if "bits_per_weight" in row else "")
              + (f", source test accuracy {100 * acc:.2f}%" if acc is not None else ""))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("tickets", help="build or resume a preset's ticket family (IMP with rewinding), or one of "
                                       "its compression arms")
    p.add_argument("--preset", default="mini")
    p.add_argument("--out", type=Path, default=None, help="family directory (default: the preset's)")
    p.add_argument("--levels", type=_levels, default=None,
                   help="IMP: highest level to build; compression arms: highest level, a list (1,3,5) or a range "
                        "(2-6) (default: every IMP level of the family)")
    p.add_argument("--family", type=int, default=0,
                   help="source seed of the family (its directory: <preset dir>/family_<seed>/)")
    p.add_argument("--arm", default="ticket", choices=[a for a in ARMS if a != "random"],
                   help="ticket: IMP levels and the random arm; oneshot[_noft]: one-shot magnitude pruning of "
                        "level 0 to IMP's counts; structured[_noft]: L1 filter pruning; quant8/quant4: "
                        "IMP levels with int8/int4 weights (lthvp/tickets/arms.py)")
    p.add_argument("--finetune-epochs", type=positive_int, default=None,
                   help="fine-tuned arms: the last N epochs of the source schedule (default 1)")
    p.set_defaults(func=cmd_tickets)
