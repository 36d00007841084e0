"""``python -m lthvp subpopulations``: who pays for compression at one level, per class and per
test image, VP vs LP (lthvp/analysis/subpopulations.py; the dashboard's Subpopulations page)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from lthvp.commands.cli_common import open_store
from lthvp.results import shots


def add_parser(sub) -> None:
    p = sub.add_parser("subpopulations", help="per-class changes at a sparse level vs dense and the test images whose "
                                              "modal prediction changes (pruning-identified exemplars), VP vs LP")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--method", nargs="+", default=["vp", "lp"], choices=["vp", "map", "lp"])
    p.add_argument("--level", type=int, required=True, help="the sparse level compared with dense (level 0)")
    p.add_argument("--shots", type=shots.arg, default="full", help="shots per class (1, 5, 10, ... or full)")
    p.add_argument("--arm", default="ticket", help="ticket (IMP) or random; the dense reference is ticket level 0")
    p.add_argument("--family", nargs="+", default=None,
                   help="only these ticket families (seeds, or 'legacy'); default: every numbered family")
    p.add_argument("--metric", default="accuracy", choices=["accuracy", "ece"], help="per-class table (text output)")
    p.add_argument("--csv", type=Path, default=None, help="write the per-image table (every test image) here")
    p.add_argument("--json", action="store_true", help="one JSON object: per-class rows, exemplar summaries, overlap, "
                                                       "the exemplar images")
    p.add_argument("--bundle", type=Path, default=None, help="read a bundle instead of the store")
    p.add_argument("--store", type=Path, default=None)
    p.set_defaults(func=cmd_subpopulations)


def _records(args):
    """(flat results table, hash -> record) of the bundle or the store."""
    import pandas as pd

    from lthvp.results.store import flat_row, read_bundle

    if args.bundle:
        records = {r.hash: r.to_json() for r in read_bundle(args.bundle)}
        return pd.DataFrame([flat_row(r) for r in records.values()]), records
    store = open_store(args)
    return store.table(), store.get


def _clean(value):
    """JSON has no NaN: null instead; numpy scalars as Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _rows(frame) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def cmd_subpopulations(args) -> int:
    from lthvp.analysis import subpop_report as R
    from lthvp.analysis.report import shots_label
    from lthvp.analysis.subpopulations import test_split

    table, records = _records(args)
    if table.empty:
        raise ValueError("no results to analyse (empty store or bundle)")
    _, labels, names = test_split(args.dataset)
    res = R.analyse(table, records, labels, names, args.dataset, args.shots, args.method, args.level, args.arm,
                    args.family)
    if not res["summaries"]:
        raise ValueError(f"no (family, seed) of {', '.join(args.method)} has both a dense (L0) and an L{args.level} "
                         f"{args.arm} run with per-sample predictions at shots={args.shots} on {args.dataset}")
    venn = res["overlap"]
    both = set()
    if venn:
        ex = res["images"][res["images"]["exemplar"]]
        both = set(ex.loc[ex["method"] == "vp", "image"]) & set(ex.loc[ex["method"] == "lp", "image"])
    images = R.named_images(res["images"], res["classes"], both if venn else None)
    if args.csv:
        images.to_csv(args.csv, index=False)
        print(f"per-image table: {args.csv}", file=sys.stderr)
    if res["runs_without_predictions"]:
        print(f"{res['runs_without_predictions']} run(s) store no per-sample predictions and are left out",
              file=sys.stderr)
    if args.json:
        out = {k: res[k] for k in ("dataset", "shots", "level", "arm", "classes", "runs_without_predictions")}
        out.update(methods=list(res["summaries"]), per_class=_rows(res["per_class"]),
                   exemplars={m: {k: _clean(v) for k, v in s.items()} for m, s in res["summaries"].items()},
                   overlap=None if venn is None else {"vp_only": venn["a_only"], "both": venn["both"],
                                                      "lp_only": venn["b_only"]},
                   images=_rows(images[images["exemplar"]]))
        print(json.dumps(out, indent=1))
        return 0
    print(f"{args.dataset}, {shots_label(args.shots)}, {args.arm} L{args.level} vs dense L0")
    for s in res["summaries"].values():
        print(R.summary_line(s))
    if venn:
        print(f"exemplars: VP only {venn['a_only']}, both {venn['both']}, LP only {venn['b_only']}")
    rows = res["per_class"][res["per_class"]["metric"] == args.metric]
    print(f"\nper class, {args.metric} (points): sparse - dense, 95% CI, Holm p over the classes")
    for method, part in rows.groupby("method", sort=False):
        print(f"  {R.NAMES.get(method, method)}:")
        for _, r in part.iterrows():
            print(f"    {r['class_name']!s:>12} {100 * r['dense']:6.1f} -> {100 * r['sparse']:6.1f}  "
                  f"{100 * r['estimate']:+6.1f} [{100 * r['ci_low']:+6.1f}, {100 * r['ci_high']:+6.1f}]  "
                  f"Holm p {r['p_holm']:.3g}")
    return 0

