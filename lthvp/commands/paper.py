"""Paper scale: ImageNet ResNet-50/18 sources, their ticket families, and the target datasets.

* ``load_pretrained``: torchvision ImageNet weights from a local file (strict, weights_only) or a
  torchvision download when allowed; offline without the file -> a message naming file and folder.
* Ticket families in the TicketFamily layout (``level_{L}.safetensors`` + ``family.json``), built
  three ways: ``import_family`` (external tickets), ``one_shot_family`` (global magnitude pruning
  of the pre-trained weights to 0.8^L, no retraining), ``imp_family_imagefolder`` (IMP rewinding to
  the pre-trained weights on a user's ImageFolder, CV_LTH recipe, resumable per level).
* Compression arms of any of these families (``compress``: int8/int4 weights, L1 filter pruning,
  one-shot magnitude pruning of level 0), through :mod:`lthvp.tickets.arms` like the mini families.
* Target datasets registered into ``lthvp.data.datasets.DATASETS``: decoded and resized once to a storage
  size (32 or 128), cached as NPZ under the data root, held as uint8 like every other dataset.

CLI: ``python -m lthvp.commands.paper one-shot|import|imp|compress|prepare-data ...`` (see docs/PAPER.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from lthvp.data.datasets import DataMissingError, data_root


# lthvp.commands.paper is the public entry point: these names are re-exported.
from lthvp.data.paper_data import PAPER_DATASETS, build_splits, decode_paper_dataset, register_datasets  # noqa: F401
from lthvp.tickets.paper_tickets import (DEFAULT_FAMILY_DIR, DEFAULT_IGNORE, IMPRecipe, import_family,  # noqa: F401
                                 imp_family_imagefolder, infer_level, one_shot_family)
from lthvp.tickets.pretrained import PRETRAINED, load_pretrained  # noqa: F401


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parse_levels(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def _parse_import(items: list[str]):
    files = {}
    listed = []
    for item in items:
        level, sep, rest = item.partition("=")
        if sep and level.isdigit():
            path, _, mask = rest.partition(",")
            files[int(level)] = (path, mask or None)
        else:
            path, _, mask = item.partition(",")
            listed.append((path, mask or None))
    if files and listed:
        raise SystemExit("give every ticket as LEVEL=PATH[,MASK] or none of them")
    return files or listed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lthvp.commands.paper", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(q):
        q.add_argument("--arch", default="resnet50", choices=sorted(PRETRAINED))
        q.add_argument("--out", type=Path, default=DEFAULT_FAMILY_DIR, help="family directory")

    def pruning(q):
        q.add_argument("--weights", type=Path, default=None, help="ImageNet weights file (default: torchvision cache)")
        q.add_argument("--download", action="store_true", help="allow torchvision to download the weights")
        q.add_argument("--prune-stem", action="store_true", help="also prune conv1 (OpenLTH); default keeps it dense")
        q.add_argument("--prune-head", action="store_true", help="also prune fc (OpenLTH); default keeps it dense")

    q = sub.add_parser("one-shot", help="one-shot global magnitude pruning of the pre-trained weights")
    common(q)
    pruning(q)
    q.add_argument("--levels", default="0-10", help="e.g. 0-10 or 0,3,6")
    q.add_argument("--random-levels", default="", help="also write random-pruning baselines at these levels")

    q = sub.add_parser("import", help="import external tickets (CV_LTH, OpenLTH, Misra, zero-weight, lthvp)")
    common(q)
    q.add_argument("tickets", nargs="+", help="PATH[,MASK] or LEVEL=PATH[,MASK]")

    q = sub.add_parser("imp", help="IMP with rewinding to the pre-trained weights on an ImageFolder")
    common(q)
    pruning(q)
    q.add_argument("--imagefolder", type=Path, required=True)
    q.add_argument("--val-folder", type=Path, default=None)
    q.add_argument("--levels", type=int, default=10)
    q.add_argument("--epochs", type=int, default=10)
    q.add_argument("--lr", type=float, default=1e-4)
    q.add_argument("--batch-size", type=int, default=256)
    q.add_argument("--max-steps", type=int, default=None)
    q.add_argument("--workers", type=int, default=8)
    q.add_argument("--device", default=None)

    q = sub.add_parser("compress", help="a compression arm of an existing family: quant8/quant4 (its levels with "
                                        "int8/int4 weights), structured_noft (L1 filter pruning of level 0), "
                                        "oneshot_noft (one-shot magnitude pruning of level 0 to each level's count)")
    q.add_argument("--out", type=Path, default=DEFAULT_FAMILY_DIR, help="family directory")
    q.add_argument("--arm", required=True, choices=["quant8", "quant4", "structured_noft", "oneshot_noft"],
                   help="no fine-tuning at paper scale (that needs ImageNet training)")
    q.add_argument("--levels", default=None, help="e.g. 0-10 or 1,3,6 (default: every level of the family)")
    q.add_argument("--val-folder", type=Path, default=None,
                   help="ImageNet val as an ImageFolder: record each member's source accuracy (default: not measured)")
    q.add_argument("--eval-images", type=int, default=10000)
    q.add_argument("--workers", type=int, default=8)
    q.add_argument("--device", default=None)

    q = sub.add_parser("prepare-data", help="download (if allowed) and decode a target dataset once")
    q.add_argument("datasets", nargs="+", choices=sorted(PAPER_DATASETS))
    q.add_argument("--data-root", type=Path, default=None)
    q.add_argument("--download", action="store_true")
    return p


def _ignore(args) -> tuple:
    return tuple(n for n, prune in (("conv1.weight", args.prune_stem), ("fc.weight", args.prune_head)) if not prune)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "one-shot":
            rl = _parse_levels(args.random_levels) if args.random_levels else ()
            info = one_shot_family(args.weights, _parse_levels(args.levels), args.out, args.arch, _ignore(args), rl,
                                   args.download, _say)
        elif args.cmd == "import":
            info = import_family(_parse_import(args.tickets), args.out, args.arch, _say)
        elif args.cmd == "imp":
            recipe = IMPRecipe(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_steps=args.max_steps,
                               ignore=_ignore(args))
            info = imp_family_imagefolder(args.weights, args.imagefolder, args.out, args.arch, args.levels, recipe,
                                          args.val_folder, num_workers=args.workers, device=args.device,
                                          download=args.download, progress=_say)
        elif args.cmd == "compress":
            from lthvp.tickets.arms import build_arm, paper_source

            source = paper_source(args.val_folder, args.eval_images, args.workers, args.device)
            levels = _parse_levels(args.levels) if args.levels else None
            info = build_arm(args.out, args.arm, levels, source=source, progress=_say)
            rows = info[f"{args.arm}_levels"]
            summary = {L: {"remaining": e["remaining"], "bits_per_weight": e.get("bits_per_weight", 32),
                           "source_test_accuracy": e["source_test_accuracy"]}
                       for L, e in sorted(rows.items(), key=lambda kv: int(kv[0]))}
            print(json.dumps({"family": str(args.out), "arm": args.arm, "levels": summary}, indent=1))
            return 0
        else:
            root = args.data_root or data_root()
            for name in args.datasets:
                d = build_splits(name, decode_paper_dataset(name, root, args.download))
                _say(f"{name}: {len(d.train)} train / {len(d.val)} val / {len(d.test)} test, {d.num_classes} classes")
            return 0
    except (DataMissingError, FileNotFoundError, ValueError) as err:
        _say(f"error: {err}")
        return 2
    summary = {L: e["remaining"] for L, e in sorted(info["levels"].items(), key=lambda kv: int(kv[0]))}
    print(json.dumps({"family": str(args.out), "builder": info["builder"], "remaining": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

