"""The subpopulation analysis in one call (:func:`analyse`, what the page, the CLI and the README
share), its plain-text lines, and the README paragraph generated from a bundle (written between
``<!-- subpopulations:start -->`` and ``<!-- subpopulations:end -->`` by ``python -m lthvp figures``)."""

from __future__ import annotations

import pandas as pd

from lthvp.analysis import subpopulations as S
from lthvp.analysis.report import shots_label, shots_order
from lthvp.analysis.subpopulations import SPLITS
from lthvp.results.shots import as_text as shots_text

NAMES = {"vp": "VP", "map": "mapping only", "lp": "LP", "vp-lp": "VP - LP"}


def analyse(table: pd.DataFrame, records, labels, classes, dataset: str, shots, methods, level: int,
            arm: str = "ticket", families=None) -> dict:
    """Per-class effects (accuracy and ECE) at ``level`` vs dense, each method's exemplars and
    their VP/LP overlap. Class names: the records' own (``classes``), else the ones given.
    ``records``: hash -> record (dict or callable). ``runs_without_predictions``
    counts selected runs that could not enter (older records store no per-sample predictions)."""
    selected = S.select_runs(table, dataset, shots, methods, [level], arm, families)
    runs, probs = S.stack(selected, records)
    get = records if callable(records) else records.get
    stored = (get(runs["hash"].iloc[0]) or {}).get("classes") if len(runs) else None
    classes = stored if stored and len(stored) == probs.shape[2] else classes  # the records' names first
    per_class = pd.concat([S.per_class_effects(runs, probs, labels, classes, m, [level], arm) for m in S.METRICS],
                          ignore_index=True) if len(runs) else S.per_class_effects(runs, probs, labels)
    images, summaries = [], {}
    for method in [m for m in methods if m in set(runs["method"])]:
        im, summary = S.exemplars(runs, probs, labels, method, level, arm)
        if summary["n_pairs"]:
            images.append(im)
            summaries[method] = summary
    images = pd.concat(images, ignore_index=True) if images else pd.DataFrame(columns=S.IMAGE_COLUMNS)
    sets = {m: set(images.loc[(images["method"] == m) & images["exemplar"], "image"]) for m in summaries}
    venn = S.overlap(sets["vp"], sets["lp"]) if {"vp", "lp"} <= set(sets) else None
    return {"dataset": dataset, "shots": shots_text(shots), "level": int(level), "arm": arm, "runs": runs,
            "runs_without_predictions": len(selected) - len(runs), "per_class": per_class, "images": images,
            "summaries": summaries, "overlap": venn, "classes": list(classes)}


def named_images(images: pd.DataFrame, classes, in_both: set | None = None) -> pd.DataFrame:
    """The per-image table as exported (CSV, --json): class names beside the indices, and whether
    the image is an exemplar of both VP and LP."""
    names = list(classes)
    name = lambda c: names[int(c)] if int(c) < len(names) else str(c)  # noqa: E731
    out = images.copy()
    for col in ("true", "dense_pred", "sparse_pred"):
        out.insert(out.columns.get_loc(col) + 1, f"{col}_name", [name(c) for c in out[col]])
    if in_both is not None:
        out["vp_and_lp"] = out["image"].isin(in_both) & out["exemplar"]
    return out


def summary_line(s: dict) -> str:
    """One method's exemplars in words (points for probabilities)."""
    if not s.get("n_pairs"):
        return f"{NAMES.get(s['method'], s['method'])}: no (family, seed) has both the dense and the sparse run"
    return (f"{NAMES.get(s['method'], s['method'])}: {s['n_exemplars']} of {s['n_test']} test images change their "
            f"modal prediction ({100 * s['fraction']:.1f}%, 95% Wilson CI {100 * s['ci_low']:.1f}-"
            f"{100 * s['ci_high']:.1f}%) over {s['n_pairs']} (family, seed) pairs: {s['n_broken']} newly broken "
            f"(dense right), {s['n_dense_wrong']} already misclassified by dense ({s['n_fixed']} of them now right); "
            + (f"true-class probability {100 * s['shift_exemplars']:+.1f} pts on them (" if s["n_exemplars"]
               else "true-class probability (")
            + f"{100 * s['shift_all']:+.1f} pts over all images); modal accuracy {100 * s['dense_accuracy']:.1f}% "
            f"dense, {100 * s['sparse_accuracy']:.1f}% sparse; {half_text(s)}")


def half_text(s: dict) -> str:
    """The split-half run-to-run reference of one method's exemplars, in words."""
    if s.get("half_dense_dense") != s.get("half_dense_dense"):  # NaN: fewer than two pairs
        return "too few pairs for a run-to-run reference"
    return (f"between two halves of the pairs, dense vs sparse modal predictions differ on {s['half_dense_sparse']:.0f} "
            f"images, dense vs dense on {s['half_dense_dense']:.0f} (run-to-run variation), sparse vs sparse on "
            f"{s['half_sparse_sparse']:.0f}")


def _class_text(row) -> str:
    return (f"class {row['class_name']} {100 * row['estimate']:+.1f} pts [{100 * row['ci_low']:+.1f}, "
            f"{100 * row['ci_high']:+.1f}]")


def units_text(n: int, unit: str) -> str:
    """'3 families x seeds (crossed)', '1 family', '5 seeds'."""
    if unit == "family x seed":
        return f"{n} famil{'y' if n == 1 else 'ies'} x seeds (crossed)"
    return f"{n} {'famil' + ('y' if n == 1 else 'ies') if unit == 'family' else unit + ('' if n == 1 else 's')}"


def per_class_sentence(per_class: pd.DataFrame, level: int, methods=("vp", "lp", "vp-lp")) -> str:
    """Which classes' accuracy changes are detected (Holm over the classes), and each method's
    largest drop with its interval."""
    rows = per_class[(per_class["metric"] == "accuracy") & (per_class["level"] == level)]
    rows = rows[rows["method"].isin(methods)]
    if rows.empty:
        return ""
    hit = rows[rows["p_holm"] < 0.05]
    found = ("detected: " + "; ".join(f"{NAMES.get(r['method'], r['method'])} {_class_text(r)}"
                                      for _, r in hit.iterrows())
             if len(hit) else "no change is detected for " + ", ".join(NAMES.get(m, m) for m in methods
                                                                       if m in set(rows["method"])))
    worst = [f"{NAMES.get(m, m)} {_class_text(g.loc[g['estimate'].idxmin()])}"
             for m in ("vp", "lp") if not (g := rows[rows["method"] == m]).empty]
    return (f"Per class (accuracy, {units_text(int(rows['n_units'].max()), rows['unit'].iloc[0])}, Holm over "
            f"{rows['class'].nunique()} classes) {found}; the largest drops: " + ", ".join(worst) + ".")


def _deepest_common(table: pd.DataFrame, shots: str) -> int | None:
    part = table[(table["arm"] == "ticket") & (table["shots"] == shots_text(shots)) & (table["level"] > 0)]
    levels = [set(part.loc[part["method"] == m, "level"]) for m in ("vp", "lp")]
    common = levels[0] & levels[1]
    return int(max(common)) if common else None


def subpopulations_markdown(records: list[dict], dataset: str = "digits", labels=None, classes=None) -> str:
    """The README paragraph: at full data (else the best-covered shot count) and the deepest level
    VP and LP share, who pays: each method's exemplars, their overlap, the per-class changes;
    then the exemplar share at that level for every shot count. Generated, never edited by hand."""
    from lthvp.results.record_schema import flat_row

    recs = [r for r in records if r["config"]["dataset"] == dataset]
    with_preds = {r["hash"]: r for r in recs if (r.get("predictions") or {}).get("test") is not None}
    head = f"Generated by `python -m lthvp figures` from the bundle ({len(recs)} {dataset} runs). "
    if not with_preds:
        return head + "No record stores per-sample test predictions, so there is nothing to say per class or per image.\n"
    table = pd.DataFrame([flat_row(r) for r in with_preds.values()])
    all_shots = shots_order(table["shots"].unique())  # flat_row's canonical texts (lthvp.results.shots)
    shots = "full" if "full" in all_shots else table["shots"].value_counts().idxmax()
    level = _deepest_common(table, shots)
    if level is None:
        return head + "VP and LP share no sparse ticket level with stored predictions.\n"
    if labels is None:
        _, labels, names = S.test_split(dataset)
        classes = classes or names
    classes = classes or next(iter(with_preds.values())).get("classes") or []
    res = analyse(table, with_preds, labels, classes, dataset, shots, ["vp", "lp"], level)
    remaining = float(table.loc[table["level"] == level, "remaining_fraction"].iloc[0])
    s, venn = res["summaries"], res["overlap"]
    if not {"vp", "lp"} <= set(s):
        return head + f"No (family, seed) pairs VP or LP at L{level} with dense.\n"
    vp, lp = s["vp"], s["lp"]
    text = [head + f"At L{level} ({100 * remaining:.1f}% of the weights) against dense, {shots_label(shots)}, the "
            f"modal prediction over {vp['n_pairs']} (family, seed) pairs changes on {vp['n_exemplars']} of "
            f"{vp['n_test']} test images for VP ({100 * vp['fraction']:.1f}%, 95% Wilson CI "
            f"{100 * vp['ci_low']:.1f}-{100 * vp['ci_high']:.1f}%) and on {lp['n_exemplars']} for LP "
            f"({100 * lp['fraction']:.1f}%, {100 * lp['ci_low']:.1f}-{100 * lp['ci_high']:.1f}%); "
            f"{venn['both']} of these exemplars are shared (VP only {venn['a_only']}, LP only {venn['b_only']}). "
            f"Run-to-run reference, between two halves of the pairs (mean of {SPLITS} random splits): one half's "
            f"dense and the other's sparse modal predictions differ on {vp['half_dense_sparse']:.0f} images for VP, "
            f"the two dense halves on {vp['half_dense_dense']:.0f} (excess "
            f"{vp['half_dense_sparse'] - vp['half_dense_dense']:+.0f}); for LP {lp['half_dense_sparse']:.0f} "
            f"against {lp['half_dense_dense']:.0f} ({lp['half_dense_sparse'] - lp['half_dense_dense']:+.0f})."]
    text.append(f"Newly broken (dense right) / fixed / wrong either way: VP {vp['n_broken']} / {vp['n_fixed']} / "
                f"{vp['n_hard']}, LP {lp['n_broken']} / {lp['n_fixed']} / {lp['n_hard']}; their mean true-class "
                f"probability moves {100 * vp['shift_exemplars']:+.1f} pts (VP) and "
                f"{100 * lp['shift_exemplars']:+.1f} pts (LP).")
    text.append(per_class_sentence(res["per_class"], level))
    shares = []
    for sh in all_shots:
        lv = _deepest_common(table, sh)
        other = analyse(table, with_preds, labels, classes, dataset, sh, ["vp", "lp"], lv)["summaries"] if lv else {}
        if {"vp", "lp"} <= set(other):
            shares.append(f"{100 * other['vp']['fraction']:.0f}% vs {100 * other['lp']['fraction']:.0f}% at "
                          f"{shots_label(sh)} (L{lv})")
    if shares:
        text.append("Exemplar share, VP vs LP: " + ", ".join(shares) + ".")
    return " ".join(t for t in text if t) + " Dashboard page **Subpopulations**; `python -m lthvp subpopulations`.\n"
