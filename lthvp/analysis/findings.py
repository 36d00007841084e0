"""The study's findings as markdown, generated from :mod:`lthvp.analysis.effects` (no hand-typed numbers).

Each of the paper's claims is stated with its estimate (crossed model), 95% and simultaneous
intervals, the corrected p, the minimum detectable effect, the per-level estimates behind a
slope and the family-mean sensitivity analysis, and "not detected" where the data do not
support it."""

from __future__ import annotations

import pandas as pd

from lthvp.analysis import effects as E
from lthvp.analysis.arm_contrasts import claim_levels
from lthvp.analysis.report import shots_order

CLAIMS = [  # (title, metric, method, contrast, how to read the sign, the sign the claim predicts; 0: either)
    ("Sparsity costs VP more than LP (accuracy)", "accuracy", "vp-lp", "vp-lp_slope",
     "VP slope - LP slope, per halving of the remaining weights; negative = VP loses more", -1),
    ("Sparsity changes VP accuracy", "accuracy", "vp", "slope", "per halving; negative = sparsity hurts", 0),
    ("Sparsity changes LP accuracy", "accuracy", "lp", "slope", "per halving; negative = sparsity hurts", 0),
    ("Sparsity worsens VP calibration (ECE)", "ece", "vp", "slope", "per halving; positive = worse calibration", 1),
    ("Sparsity worsens LP calibration (ECE)", "ece", "lp", "slope", "per halving; positive = worse calibration", 1),
    ("... after temperature scaling on validation (VP ECE)", "ts_ece", "vp", "slope", "per halving", 0),
    ("... after temperature scaling on validation (LP ECE)", "ts_ece", "lp", "slope", "per halving", 0),
    ("The prompt helps beyond its label mapping (dense model)", "accuracy", "vp-map", "vp-map_L0",
     "VP - mapping only with the prompt frozen, level 0", 1),
]
# docs/STUDY.md's claims 6 and 7 on the other compression arms, asked at every level the records hold
# the arm at ({level}) and left out when they hold none (the shipped v2 bundle holds none). Claim 6
# predicts >= 0 (a detected negative refutes it); claim 7 predicts no change (None: two-sided, a
# detected change either way contradicts it).
_ONESHOT = "IMP - one-shot magnitude pruning (fine-tuned) at IMP level {level}'s remaining weights; negative = IMP worse"
_QUANT = ("quantized - float weights at level {level} (L0: dense); positive = worse; predicted 0: a detected change "
          "either way contradicts, not detected is informative only with an MDE <= 2 points")
ARM_CLAIMS = [(f"IMP tickets transfer no worse than one-shot magnitude pruning at equal sparsity ({name}, L{{level}})",
               "accuracy", method, "imp-oneshot_L{level}", _ONESHOT, 1) for method, name in (("vp", "VP"), ("lp", "LP"))]
ARM_CLAIMS += [(f"Quantization does not worsen calibration ({name} {'ECE after temperature scaling' if ts else 'ECE'}, "
                f"int{bits}, L{{level}})", "ts_ece" if ts else "ece", method, f"quant{bits}-L{{level}}", _QUANT, None)
               for bits in (8, 4) for ts in (False, True) for method, name in (("vp", "VP"), ("lp", "LP"))]
CLAIMS += ARM_CLAIMS


def claim_verdict(p_adj: float, estimate: float, predicted_sign: int | None, alpha: float = 0.05) -> str:
    """Detected or not (``p_adj``: the corrected p); a detected effect of the sign opposite to the
    claim's says so, because "detected" beside a claim reads as support for it. ``predicted_sign``
    None: the claim predicts no effect, so any detected effect is against it."""
    if p_adj != p_adj:
        return "not testable"
    if p_adj >= alpha:
        return "not detected"
    if predicted_sign is None:
        return "**detected, against the claim**"
    return "**detected**" if predicted_sign * estimate >= 0 else "**detected, against the claim**"


def _ci(k: float, lo: float, hi: float) -> str:
    return "n/a" if lo != lo else f"[{k * lo:+.2f}, {k * hi:+.2f}]"


def _per_level(table: pd.DataFrame, method: str, shots: str, k: float) -> str:
    """The L{k}-L0 estimates of the same method and shots, in points: what a slope summarises."""
    return " / ".join(f"L{level} {k * est:+.1f}" for level, est in E.per_level_estimates(table, method, shots))


def _concrete_claims(df: pd.DataFrame, dataset: str | None):
    """(effects table, title, metric, method, contrast, reading, sign) per claim, the effects computed
    once per metric; a claim with ``{level}`` becomes one claim per level the table holds it at
    (:func:`lthvp.analysis.arm_contrasts.claim_levels`), none when it holds none."""
    cache: dict[str, pd.DataFrame] = {}
    for title, metric, method, contrast, reading, sign in CLAIMS:
        if metric not in cache:
            cache[metric] = E.effects(df, metric, dataset)
        table = cache[metric]
        levels = claim_levels(table, method, contrast) if "{level}" in contrast else [None]
        for lv in levels:
            yield (table, *(x.replace("{level}", str(lv)) for x in (title, metric, method, contrast, reading)), sign)


def claim_table(df: pd.DataFrame, dataset: str | None = None) -> str:
    lines = ["| claim | shots | estimate [95% CI] | simultaneous CI | adj. p | MDE | verdict | per level vs L0 "
             "| family means: [95% CI], p | replicates |", "|---|---|---|---|---|---|---|---|---|---|"]
    for table, title, metric, method, contrast, reading, sign in _concrete_claims(df, dataset):
        rows = table[(table["method"] == method) & (table["contrast"] == contrast)] if not table.empty else table
        if rows.empty:
            lines.append(f"| {title} | | unavailable in these records | | | | | | | |")
            continue
        k = E.points_scale(metric)
        unit = " pts" if k == 100 else ""
        rows = rows.set_index("shots").loc[shots_order(rows["shots"])].reset_index()
        for i, r in rows.iterrows():
            verdict = claim_verdict(r["p_adj"], r["estimate"], sign)
            if r["driven_by_L0"]:
                verdict += " (carried by the dense level)"
            levels = _per_level(table, method, r["shots"], k) if contrast in ("slope", "vp-lp_slope") else ""
            replicates = (f"{r['n_families']} x {r['n_seeds']} (crossed)" if r["unit"] == "family x seed"
                          else f"{r['n_families']} ({r['unit']})")
            lines.append(f"| {f'{title} ({reading})' if i == 0 else ''} | {r['shots']} | {k * r['estimate']:+.2f}{unit} "
                         f"{_ci(k, r['ci_low'], r['ci_high'])} | {_ci(k, r['ci_low_adj'], r['ci_high_adj'])} "
                         f"| {r['p_adj']:.3g} | {k * r['mde']:.2f} | {verdict} | {levels} "
                         f"| {_ci(k, r['ci_low_fm'], r['ci_high_fm'])}, {r['p_fm']:.3g} | {replicates} |")
    low = E.low_vs_full(df, "accuracy", dataset)
    if low:
        p = low["p"]
        said = claim_verdict(p, low["estimate"], -1).replace("**", "")  # the claim: the gap is widest at low data
        lines += ["", f"*Most at low data* (the VP - LP slope gap at the fewest shots minus at full data, accuracy): "
                      f"{100 * low['estimate']:+.2f} pts {_ci(100, low['ci_low'], low['ci_high'])}, "
                      f"p = {p:.3g} (single test), {said} (at 5%), MDE {100 * low['mde']:.2f} pts; family means "
                      f"{_ci(100, low['ci_low_fm'], low['ci_high_fm'])}, p = {low['p_fm']:.3g}; "
                      f"{E.replicates_text(low)}."]
    return "\n".join(lines)


def replication_line(df: pd.DataFrame, dataset: str | None = None) -> str:
    """One sentence on what the planned analysis used and left out (:func:`effects.replication_report`)."""
    report = E.replication_report(df if dataset is None else df[df["dataset"] == dataset])
    if report.empty:
        return "Replication: every cell holds the same (family, seed) replicates, one run each; no run was left out."
    counts = report.groupby("issue")["runs"].sum()
    parts = [f"{len(report[report['issue'] == issue])} cell(s) with {issue} ({n} runs)" for issue, n in counts.items()]
    return ("Replication: " + "; ".join(parts) + ". Contrasts use only the (family, seed) replicates every cell "
            "they compare holds (`python -m lthvp effects` lists them; `--all-runs` uses everything).")


def prompt_movement(df: pd.DataFrame, dataset: str | None = None) -> str:
    """How far the learned VP border moves from its grey start (mean |prompt - grey| over the
    border, in /255), per shot count at the dense and the sparsest level: a prompt that barely
    moves cannot carry a claim about prompt learning."""
    data = E.prepare(df if dataset is None else df[df["dataset"] == dataset])
    if "prompt_shift" not in data:
        return ""
    vp = data[(data["method"] == "vp") & (data["arm"] == "ticket")].dropna(subset=["prompt_shift"])
    if vp.empty:
        return ""
    lo, hi = int(vp["level"].min()), int(vp["level"].max())
    lines = [f"| shots | L{lo}: mean (min-max) /255 | L{hi}: mean (min-max) /255 | runs (L{lo} / L{hi}) |",
             "|---|---|---|---|"]
    for shots in shots_order(vp["shots"]):
        cells, counts = [], []
        for level in (lo, hi):
            v = 255 * vp[(vp["shots"] == shots) & (vp["level"] == level)]["prompt_shift"]
            cells.append(f"{v.mean():.1f} ({v.min():.1f}-{v.max():.1f})" if len(v) else "no runs")
            counts.append(str(len(v)))
        lines.append(f"| {shots} | {cells[0]} | {cells[1]} | {' / '.join(counts)} |")
    return "How far the learned border moves from its grey start (VP, IMP tickets):\n\n" + "\n".join(lines)


def findings_markdown(df: pd.DataFrame, dataset: str | None = None) -> str:
    scope = E.prepare(df if dataset is None else df[df["dataset"] == dataset]) if not df.empty else df
    n_fam = int(scope["family"].nunique()) if not scope.empty else 0
    n_seed = int(scope["seed"].nunique()) if not scope.empty else 0
    head = (f"Generated by `python -m lthvp figures` from the bundle ({len(df)} runs, {n_fam} ticket "
            "famil" + ("y" if n_fam == 1 else "ies") + f" x {n_seed} seeds). Estimates are paired within "
            "(family, seed). "
            + ("With one family the seeds are the replicates (one-sample t over seeds): the intervals leave out "
               "the spread between tickets. " if n_fam == 1 else
               "Every family reuses the same seeds (shot samples), so family and seed are crossed random factors: "
               "each estimate, 95% CI and p comes from a crossed random-effects model (variance components for "
               "family, seed and residual, Satterthwaite df; `lthvp/analysis/mixed.py`). ") + "The "
            "simultaneous CI and the adjusted p are Bonferroni over the shot counts of each claim, so a "
            "simultaneous CI misses zero exactly when the claim is detected (adj. p < 0.05). MDE: the smallest "
            "effect the claim detects with 80% power at that corrected level, from the fitted variance "
            "components; \"not detected\" next to a large MDE is weak evidence of no effect. Per level: the L{k} - "
            "L0 estimates a slope summarises; a detected slope that the dense level alone carries (it departs "
            "from the line through the sparse levels, which show no slope) is marked. Family means: the former "
            "analysis (seeds averaged within a family, t-test over the families), kept as a sensitivity check; "
            "it leaves out the variance the families share through the seeds. Accuracy and ECE in percentage "
            "points. " + replication_line(df, dataset))
    movement = prompt_movement(df, dataset) if not df.empty else ""
    return head + "\n\n" + claim_table(df, dataset) + "\n" + (f"\n{movement}\n" if movement else "")
