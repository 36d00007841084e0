"""How an effect is put into words: units (points for accuracy and calibration), the
replicates behind it, and the verdict (detected, against the claim, or not detected with the
minimum effect the design could have detected)."""

from __future__ import annotations

import pandas as pd

from lthvp.analysis.mixed import ALPHA
from lthvp.results.shots import as_text as shots_text, phrase as shots_phrase


PERCENT_METRICS = ("accuracy", "ece", "mce", "ts_ece", "ts_mce")


def points_scale(metric: str | None) -> float:
    """Accuracy and calibration errors are fractions in the records and stated in percentage
    points wherever a person reads them; NLL and Brier are stated as they are."""
    return 100.0 if metric in PERCENT_METRICS else 1.0


def replicates_text(row: pd.Series | dict) -> str:
    """'3 families x 5 seeds (crossed)', or the one-way unit when there is only one of either."""
    n_f = row["n_families"]
    unit = row.get("unit", "family")
    if unit == "family x seed":
        return f"{n_f} families x {row.get('n_seeds')} seeds (crossed)"
    return f"{n_f} famil{'y' if n_f == 1 else 'ies'} ({unit} as unit)"


def verdict(row: pd.Series | dict, alpha: float = ALPHA, metric: str | None = None) -> str:
    """One plain-language line generated from a row's numbers (in points for ``metric`` when it
    is a percentage, so it reads like the table and the charts beside it). The decision is the
    corrected one (``p_adj``, Bonferroni over the shot counts; ``p_holm`` for older tables); an
    effect not detected says how large an effect the data could have detected (``mde``)."""
    adjusted = "p_adj" in row and row["p_adj"] == row["p_adj"]
    p = row["p_adj"] if adjusted else row["p_holm"]
    if p != p:  # NaN: fewer than two replicates
        return "not testable (fewer than two replicates)"
    status = "detected" if p < alpha else "not detected"
    k = points_scale(metric)
    unit, digits = (" pts", 2) if k == 100 else ("", 4)
    how = "after Bonferroni over the shot counts" if adjusted else "after Holm"
    text = (f"{status} at {100 * alpha:g}% {how}: estimate {k * row['estimate']:+.{digits}f}{unit} "
            f"[{k * row['ci_low']:+.{digits}f}, {k * row['ci_high']:+.{digits}f}], "
            f"{'p_adj' if adjusted else 'p_holm'} = {p:.3g}, {replicates_text(row)}")
    mde = row.get("mde", float("nan")) if hasattr(row, "get") else float("nan")
    if status == "not detected" and mde == mde:
        text += f"; could have detected >= {k * mde:.{digits}f}{unit} (80% power)"
    flag = row.get("driven_by_L0", False)
    if flag == flag and flag is not None and bool(flag):  # NaN or missing: no flag
        text += "; driven by the dense level (no slope over the sparse levels alone)"
    return text


def headline(table: pd.DataFrame, alpha: float = ALPHA) -> str | None:
    """The study's answer in one sentence: the paper's claim (sparsity costs VP more than LP,
    the VP - LP accuracy slope, negative = VP loses more) at each shot count, with the full-data
    (or the largest) shot count's estimate and simultaneous interval. None without that contrast."""
    rows = table[(table["contrast"] == "vp-lp_slope") & (table["arm"] == "ticket")] if len(table) else table
    if "metric" in rows:
        rows = rows[rows["metric"] == "accuracy"]
    if not len(rows):
        return None
    p = rows["p_adj"] if "p_adj" in rows else rows["p_holm"]
    detected = rows[p < alpha]
    def said(shots) -> str:
        return ", ".join(shots_phrase(s) for s in shots)

    supports, against = detected.loc[detected["estimate"] < 0, "shots"], detected.loc[detected["estimate"] >= 0, "shots"]
    parts = []
    if len(supports):
        parts.append(f"detected at {said(supports)}")
    if len(against):
        parts.append(f"detected against the claim (LP loses more) at {said(against)}")
    verdict_text = "; ".join(parts) if parts else "not detected at any shot count"
    shots = [shots_text(s) for s in rows["shots"]]
    last = rows.iloc[shots.index("full")] if "full" in shots else rows.iloc[-1]
    lo, hi = (last["ci_low_adj"], last["ci_high_adj"]) if "ci_low_adj" in last else (last["ci_low"], last["ci_high"])
    where = f"{'on' if shots_text(last['shots']) == 'full' else 'at'} {shots_phrase(last['shots'])}"
    return (f"Does sparsity cost visual prompting more than linear probing? {verdict_text[0].upper()}{verdict_text[1:]}; "
            f"{where} VP's accuracy changes by {100 * last['estimate']:+.1f} points per halving of the weights "
            f"relative to LP's (simultaneous 95% interval {100 * lo:+.1f} to {100 * hi:+.1f}).")
