"""Command line: python -m lthvp tickets|run|sweep|worker|effects|figures|export|import|store|paper."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lthvp.commands.cli_common import every_store_arg, open_store, positive_int, progress_bar, store_path
from lthvp.results import shots
from lthvp.results.config import ARMS, RunConfig
from lthvp.results.presets import MINI


def _family(text: str) -> int | None:
    if text == "legacy":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"family must be a source seed (an integer) or 'legacy', got {text!r}") from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _config_args(p: argparse.ArgumentParser, many: bool) -> None:
    nargs = "+" if many else None
    p.add_argument("--preset", default="mini")
    p.add_argument("--dataset", default=["digits"] if many else "digits", nargs=nargs)
    p.add_argument("--method", default=["vp", "lp"] if many else "vp", choices=["vp", "map", "lp"], nargs=nargs,
                   help="vp: ILM-VP; map: its label mapping with the prompt frozen (baseline); lp: linear probe")
    p.add_argument("--level", type=int, default=list(range(9)) if many else 0, nargs=nargs)
    p.add_argument("--shots", type=shots.arg, default=shots.options(MINI) if many else "full", nargs=nargs,
                   help="shots per class (an int) or 'full'")
    p.add_argument("--seed", type=int, default=[0] if many else 0, nargs=nargs)
    p.add_argument("--family", type=_family, default=[0] if many else 0, nargs=nargs,
                   help="ticket family (source seed) under the preset's directory; 'legacy' = the first single family")
    p.add_argument("--steps", type=int, default=None, help="VP optimizer-step budget (default: the preset's)")
    p.add_argument("--val-per-class", type=int, default=None,
                   help="validation images per class drawn from train, disjoint from the shots")
    p.add_argument("--arm", default="ticket", choices=list(ARMS),
                   help="ticket (IMP), random, or a compression arm built by `tickets --arm`")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--mapping", default="ilm", choices=["ilm", "flm", "rlm"])
    p.add_argument("--assignment", default="greedy", choices=["greedy", "hungarian"])
    p.add_argument("--lp-input", default="full", choices=["full", "matched"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: VP's steps and mapping/validation passes under bf16 autocast (names a new result)")
    p.add_argument("--store", type=store_path, default=None, help="results store directory (default cache/store)")


def _configs(args, many: bool):
    from itertools import product

    common = dict(preset=args.preset, arm=args.arm, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                  image_size=args.image_size, mapping=args.mapping, assignment=args.assignment,
                  lp_input=args.lp_input, steps=args.steps, val_per_class=args.val_per_class, precision=args.precision)
    axes = [args.family, args.dataset, args.method, args.level, args.shots, args.seed]
    if not many:
        axes = [[a] for a in axes]
    return [RunConfig(family=f, dataset=d, method=m, level=lv, shots=sh, seed=sd, **common)
            for f, d, m, lv, sh, sd in product(*axes)]


def _epoch_printer(prefix: str):
    def show(p):
        loss = "-" if p.get("train_loss") is None else f"{p['train_loss']:.3f}"
        steps = f" steps {p['steps']}" if "steps" in p else ""
        print(f"{prefix} epoch {p['epoch']}/{p['epochs']}{steps} train_loss {loss} val_acc {p['val_acc']:.3f}",
              file=sys.stderr)
    return show


def cmd_run(args) -> int:
    from lthvp.compute.runner import run

    (cfg,) = _configs(args, many=False)
    result = run(cfg, open_store(args), progress=None if args.quiet else _epoch_printer(f"[{cfg.method}]"),
                 force=args.force)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"accuracy {summary['accuracy']:.4f}  ECE {summary['ece']:.4f}  MCE {summary['mce']:.4f}  "
              f"NLL {summary['nll']:.4f}  Brier {summary['brier']:.4f}  remaining "
              f"{100 * summary['remaining_fraction']:.1f}%  hash {summary['hash']}"
              + ("  (from the store)" if summary["cached"] else ""))
    return 0


def shard(configs: list, k: int, n: int) -> list:
    """The K-th of N shards (:func:`lthvp.compute.sweep.shard`)."""
    from lthvp.compute.sweep import shard as deal

    return deal(configs, k, n)


def cmd_sweep(args) -> int:
    """Submit and drain (lthvp.compute.sweep): unstored runs are queued, then run here or on Dask."""
    from lthvp.compute.jobs import JobQueue
    from lthvp.compute.sweep import drain_local, submit

    store = open_store(args)
    configs = _configs(args, many=True)
    if args.random_levels:
        configs += _configs(argparse.Namespace(**{**vars(args), "arm": "random", "level": args.random_levels,
                                                  "shots": args.random_shots}), many=True)
    k, n = (int(v) for v in args.shard.split("/"))
    if not 0 <= k < n:
        raise ValueError(f"--shard must be K/N with 0 <= K < N, got {args.shard}")
    configs = shard(configs, k, n)
    if args.dask:
        from lthvp.compute.dask_sweep import dask_sweep

        return 1 if dask_sweep(configs, store, args.dask, gpu=args.gpu).failed else 0
    if args.gpu:
        raise ValueError("--gpu needs --dask (the sequential sweep uses $LTHVP_DEVICE or the first GPU)")
    queue = JobQueue.for_store(store.directory)
    sub = submit(configs, store, queue)
    print(f"sweep: {len(configs)} runs, {sub.skipped} already stored or repeated, {len(sub.ids)} to run "
          f"(queued in {queue.directory})", file=sys.stderr)
    bar = progress_bar(len(sub.ids), "sweep")

    def finished(ran):  # one job, or the seeds of a cell trained together
        cfg = sub.configs[ran[0][0]]
        for jid, state, error in ran:
            if error is not None:
                bar.write(f"{state} {sub.configs[jid]}: {error}", file=sys.stderr)
        bar.update(len(ran))
        bar.set_postfix_str(f"{cfg.method} L{cfg.level} {shots.label(cfg.shots)} x{len(ran)}")

    try:
        report = drain_local(sub, store, queue, finished)
    except KeyboardInterrupt:
        print("\nsweep stopped: running jobs re-queued, its unstarted jobs cancelled", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(f"sweep finished in {report.seconds:.0f} s ({report.done} stored, {len(report.failed)} failed)",
          file=sys.stderr)
    return 1 if report.failed else 0


def cmd_export(args) -> int:
    store = open_store(args)
    keys = None
    if args.preset or args.dataset or args.family:
        from lthvp.analysis.pairing import selected_hashes

        keys = selected_hashes(store.table(), args.preset, args.dataset, args.family)
    path = store.export_bundle(args.path, keys, note=args.note)
    print(f"exported {(len(keys) if keys is not None else len(store)) - len(store.unreadable)} results to {path}")
    return 0


def cmd_import(args) -> int:
    from lthvp.results.safe_files import printable
    from lthvp.results.store import BundleError
    from lthvp.results.studies import register_import

    try:
        report = (store := open_store(args)).import_bundle_report(args.path)
        register_import(store, args.path, report, "cli")  # the bundle becomes a study (lthvp.results.studies)
    except BundleError as err:  # its message is already printable; the path may be a hostile file name
        print(f"rejected {printable(args.path)}: {err}", file=sys.stderr)
        return 2
    print(f"imported {printable(args.path)}: {len(report.added)} added, {len(report.skipped)} already stored")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from lthvp.commands.cli_study import cmd_effects, cmd_figures

    parser = argparse.ArgumentParser(prog="python -m lthvp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from lthvp.commands.cli_tickets import add_parser as add_tickets  # IMP families and compression arms
    add_tickets(sub)

    p = sub.add_parser("run", help="one transfer experiment (stored; a repeat returns the stored result)")
    _config_args(p, many=False)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--force", action="store_true", help="retrain even if the result is stored")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="every combination of the given axes, skipping stored results")
    _config_args(p, many=True)
    p.add_argument("--random-levels", type=int, nargs="*", default=[],
                   help="also run the random-pruning arm at these levels")
    p.add_argument("--random-shots", type=shots.arg, nargs="+", default=["full"], help="shots for the random arm")
    p.add_argument("--shard", default="0/1", help="run every N-th config starting at K (K/N), e.g. one per GPU")
    p.add_argument("--dask", default=None, metavar="tcp://HOST:PORT|local:N",
                   help="run on Dask: a running scheduler, or N local worker processes (docs/DISTRIBUTED.md)")
    p.add_argument("--gpu", action="store_true", help="with --dask: each run needs one GPU (workers: --resources GPU=1)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("worker", help="background worker: pop queued jobs from the store and run them")
    p.add_argument("--store", type=store_path, default=None)
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--poll", type=_positive_seconds, default=1.0, help="seconds between queue checks (> 0)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="drain the queue onto a Dask cluster instead of running jobs here: local:N or tcp://HOST:PORT")
    p.add_argument("--in-flight", type=positive_int, default=None,
                   help="with --dask: jobs on the cluster at once (default: the cluster's worker threads)")
    p.add_argument("--gpu", action="store_true", help="with --dask: each job needs one GPU resource")
    p.set_defaults(func=lambda args: __import__("lthvp.compute.worker", fromlist=["main"]).main(args))

    p = sub.add_parser("paper", help="paper-scale families and datasets: one-shot | import | imp | compress | prepare-data",
                       add_help=False)

    p = sub.add_parser("figures", help="write the study's figures (PNG) and tables (markdown) from a bundle")
    p.add_argument("bundle", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/figures"))
    p.add_argument("--dataset", default="digits")
    p.add_argument("--readme", type=Path, default=None,
                   help="also rewrite the findings between <!-- findings:start/end --> in this README")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("effects", help="paired contrasts, sparsity slopes, VP-LP and IMP-random differences "
                                       "with 95%% intervals, corrected p and MDE (family x seed crossed model)")
    p.add_argument("--dataset", default=None)
    p.add_argument("--metric", default="accuracy",
                   choices=["accuracy", "ece", "mce", "nll", "brier", "ts_ece", "ts_mce", "ts_nll", "ts_brier"],
                   help="ts_*: after temperature scaling fitted on the validation split")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all-runs", action="store_true",
                   help="use every run (other protocols, duplicate and unbalanced replicates averaged) instead of "
                        "the planned replicates only")
    p.add_argument("--bundle", type=Path, default=None, help="read a bundle instead of the store")
    p.add_argument("--store", type=store_path, default=None)
    p.set_defaults(func=cmd_effects)

    p = sub.add_parser("export", help="write the store (or a filtered part) as a bundle")
    p.add_argument("path", type=Path)
    p.add_argument("--preset", default=None)
    p.add_argument("--dataset", default=None)
    p.add_argument("--note", default="")
    p.add_argument("--family", nargs="+", default=None, help="only these ticket families (seeds, or 'legacy')")
    p.add_argument("--store", type=store_path, default=None)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="validate a bundle and add its results to the store")
    p.add_argument("path", type=Path)
    p.add_argument("--store", type=store_path, default=None)
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("store", help="check stored results against the record schema, repair a store, or delete results")
    store_sub = p.add_subparsers(dest="store_command", required=True)
    c = store_sub.add_parser("check", help="validate every stored result; exit 1 if any is bad, 2 if unreadable")
    c.add_argument("--store", type=store_path, default=None, help="results store directory (default cache/store)")
    r = store_sub.add_parser("repair", help="delete the results check rejects; rebuild an unreadable cache.db from "
                                            "what can still be read (the damaged file is kept aside)")
    r.add_argument("--store", type=store_path, default=None, help="results store directory (default cache/store)")
    d = store_sub.add_parser("delete", help="remove results by hash (each removal recorded with its time)")
    d.add_argument("hashes", nargs="+", metavar="HASH")
    d.add_argument("--store", type=store_path, default=None, help="results store directory (default cache/store)")
    p.set_defaults(func=cmd_store)
    from lthvp.commands.cli_subpop import add_parser as add_subpopulations  # per-class effects, exemplars
    add_subpopulations(sub)
    every_store_arg(parser)  # also those cli_subpop and cli_tickets declare
    return parser


def cmd_store(args) -> int:
    from lthvp.commands.store_admin import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    from lthvp.data.datasets import DataMissingError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["paper"]:  # its own parser, so `paper --help` and its flags pass through untouched
        from lthvp.commands.paper import main as paper_main

        return paper_main(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "store", None) == "":  # store_path keeps '' as it is, so it can be refused here for every command
        print("error: --store is empty; name the store's directory, or leave --store out for the default store",
              file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (DataMissingError, OSError, ValueError) as err:  # one printable line, never a traceback
        from lthvp.results.safe_files import printable

        print(f"error: {printable(err)}", file=sys.stderr)
        return 2
