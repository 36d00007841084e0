"""The study's findings as markdown, generated from :mod:`lthvp.analysis.effects` (no hand-typed numbers).

Each of the paper's claims is stated with its estimate, 95% interval and Holm-adjusted p, and
"not detected" where the data do not support it."""

from __future__ import annotations

import pandas as pd

from lthvp.analysis import effects as E
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


def claim_verdict(p_holm: float, estimate: float, predicted_sign: int, alpha: float = 0.05) -> str:
    """Detected or not; a detected effect of the sign opposite to the claim's says so, because
    "detected" beside a claim reads as support for it."""
    if p_holm != p_holm:
        return "not testable"
    if p_holm >= alpha:
        return "not detected"
    return "**detected**" if predicted_sign * estimate >= 0 else "**detected, against the claim**"


def claim_table(df: pd.DataFrame, dataset: str | None = None) -> str:
    lines = ["| claim | shots | estimate [95% CI] | Holm p | verdict | families (unit) |", "|---|---|---|---|---|---|"]
    cache: dict[str, pd.DataFrame] = {}
    for title, metric, method, contrast, reading, sign in CLAIMS:
        table = cache.setdefault(metric, E.effects(df, metric, dataset))
        rows = table[(table["method"] == method) & (table["contrast"] == contrast)] if not table.empty else table
        if rows.empty:
            lines.append(f"| {title} | | unavailable in these records | | | |")
            continue
        k = E.points_scale(metric)
        unit = " pts" if k == 100 else ""
        rows = rows.set_index("shots").loc[shots_order(rows["shots"])].reset_index()
        for i, r in rows.iterrows():
            verdict = claim_verdict(r["p_holm"], r["estimate"], sign)
            lines.append(f"| {f'{title} ({reading})' if i == 0 else ''} | {r['shots']} | {k * r['estimate']:+.2f}{unit} "
                         f"[{k * r['ci_low']:+.2f}, {k * r['ci_high']:+.2f}] | {r['p_holm']:.3g} | {verdict} | "
                         f"{r['n_families']} ({r['unit']}) |")
    low = E.low_vs_full(df, "accuracy", dataset)
    if low:
        p = low["p"]
        said = claim_verdict(p, low["estimate"], -1).replace("**", "")  # the claim: the gap is widest at low data
        lines += ["", f"*Most at low data* (the VP - LP slope gap at the fewest shots minus at full data, accuracy): "
                      f"{100 * low['estimate']:+.2f} pts [{100 * low['ci_low']:+.2f}, {100 * low['ci_high']:+.2f}], "
                      f"p = {p:.3g} (single test), {said} (at 5%); "
                      f"{low['n_families']} families ({low['unit']} as unit)."]
    return "\n".join(lines)


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


def detectable(n_units: int, n_tests: int, alpha: float = 0.05) -> float | None:
    """How many between-unit standard deviations an effect must reach to be detected: the
    smallest |mean| / sd that gives a Holm-adjusted p < alpha when it is the strongest of
    ``n_tests`` shot counts (t-test on ``n_units`` unit means). None below two units."""
    from scipy import stats

    if n_units < 2:
        return None
    return float(stats.t.ppf(1 - alpha / (2 * max(1, n_tests)), n_units - 1) / n_units ** 0.5)


def findings_markdown(df: pd.DataFrame, dataset: str | None = None) -> str:
    scope = E.prepare(df if dataset is None else df[df["dataset"] == dataset]) if not df.empty else df
    n_fam = int(scope["family"].nunique()) if not scope.empty else 0
    head = (f"Generated by `python -m lthvp figures` from the bundle ({len(df)} runs, {n_fam} ticket "
            "famil" + ("y" if n_fam == 1 else "ies") + "). Estimates are paired within (family, seed); the family "
            "is the unit of replication (seeds when there is only one family); Holm's correction runs over the "
            "shot counts of each claim; each 95% CI is the contrast's own, not Holm-adjusted, so one can miss "
            "zero while its Holm p stays above 0.05. Accuracy and ECE in percentage points.")
    n_shots = int(scope["shots"].nunique()) if not scope.empty else 0
    need = detectable(n_fam, n_shots) if n_fam > 1 else None
    if need is not None:
        head += (f" With {n_fam} families and {n_shots} shot counts per claim, an effect is detected only when its "
                 f"mean exceeds {need:.1f} times its standard deviation between families (for the strongest shot "
                 "count): \"not detected\" is weak evidence of no effect, and the interval says how large an "
                 "effect the data still allow.")
    movement = prompt_movement(df, dataset) if not df.empty else ""
    return head + "\n\n" + claim_table(df, dataset) + "\n" + (f"\n{movement}\n" if movement else "")
