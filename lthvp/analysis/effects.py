"""Effects with their uncertainty: the statistics behind every claim the study makes.

Input is the results table (one row per run: config fields, metrics, ``ts_*`` temperature-
scaled metrics). Replicates are paired: a contrast is formed inside one (family, seed), where
the seed fixes the shot sample, order and initialisation at every level and for every method.
Every family reuses the same seeds, so **family and seed are crossed random factors**: each
estimate, 95% interval and p comes from the crossed model of :mod:`lthvp.analysis.mixed`
(closed form on the planned, balanced grid; Satterthwaite df). The old analysis, seeds averaged
inside a family and a t-test over the family means, is kept beside it as a sensitivity check
(``*_fm`` columns, and ``p_perm``, the exact sign-flip p over the family means): it leaves the
shared seed effects out and is too narrow when they are large. With a single family (the legacy
study) seeds are the replicates (``unit=seed``).

Contrasts (estimates in the metric's own units, e.g. accuracy as a fraction):

* ``L{k}-L0``: level k minus the dense level 0 (method ``vp-lp``: VP's minus LP's);
* ``slope``: least-squares slope of the metric against log2(1 / remaining fraction), i.e. the
  change *per halving of the remaining weights* (negative accuracy slope = sparsity hurts);
* ``vp-lp_slope``: VP's slope minus LP's (the paper's "sparsity costs VP more than LP");
* ``imp-random_L{k}``: the IMP ticket minus random pruning at equal sparsity, and the same for
  every other pruning arm (``imp-oneshot_L{k}``, ``imp-structured_L{k}``, ...);
* ``quant8-L{k}`` / ``quant4-L{k}``: a quantized arm minus the same level in float (k = 0: minus
  dense); these arm contrasts live in :mod:`lthvp.analysis.arm_contrasts`;
* ``vp-map_L{k}``: VP minus the same label mapping with the prompt frozen (the prompt's share).

Multiplicity: one question (``test_family``: metric | method | arm | contrast) is asked at
every shot count. ``p_adj`` is Bonferroni over those m shot counts and ``ci_*_adj`` the matching
simultaneous intervals (level 1 - 0.05/m), so an adjusted interval excludes 0 exactly when
p_adj < 0.05; verdicts use ``p_adj``. ``p_holm`` (Holm, slightly more powerful, with no matching
intervals) is reported too. ``mde``: the smallest effect detected with 80% power at the corrected
level 0.05/m, from the fitted variance components and df.

Shape (slopes): ``per_level`` lists the L{k}-L0 estimates beside the slope; ``shape_p`` tests
whether the dense level departs from the line through the sparse levels (a step at L0);
``slope_wo_L0``/``p_wo_L0`` is the slope over the sparse levels alone; ``driven_by_L0`` marks a
detected slope whose dense level departs from the line while the sparse levels alone show no
slope.

Replication: only planned replicates are analysed: one run per (cell, family, seed) of the main
protocol (:func:`main_protocol`), and a (family, seed) enters a contrast only when it has every
cell the contrast uses (all levels, for a slope). What is left out or missing is listed by
:func:`replication_report`, never pooled silently; ``all_runs=True`` uses every run, averaging
duplicates of one cell explicitly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from lthvp.analysis import mixed
from lthvp.analysis.arm_contrasts import by_arm, imp_vs_pruning, quant_vs_float
from lthvp.analysis.arm_contrasts import contrast_row as _row
from lthvp.analysis.inference import crossed, holm, sign_flip_p, summarise  # noqa: F401  (re-exported)
from lthvp.analysis.pairing import family_keys, minus_dense
from lthvp.analysis.replication import (KEY, PROTOCOL, main_protocol, prepare,  # noqa: F401  (re-exported)
                                        replication_report)
from lthvp.analysis.verdicts import PERCENT_METRICS, points_scale, replicates_text, verdict  # noqa: F401

METRICS = ("accuracy", "ece", "mce", "nll", "brier", "ts_ece", "ts_mce", "ts_nll", "ts_brier")
COLUMNS = ["metric", "method", "arm", "shots", "contrast", "estimate", "ci_low", "ci_high", "p", "p_perm", "p_holm",
           "n_families", "n_runs", "unit", "test_family",
           "p_adj", "ci_low_adj", "ci_high_adj", "mde", "se", "df", "ci_low_fm", "ci_high_fm", "p_fm",
           "sd_family", "sd_seed", "sd_resid", "n_seeds", "balanced", "fit",
           "per_level", "slope_wo_L0", "p_wo_L0", "shape_p", "driven_by_L0"]
TEXT_COLUMNS = ["dataset", "method", "arm", "shots", "contrast", "estimate", "ci_low", "ci_high", "p", "p_adj", "mde",
                "ci_low_fm", "ci_high_fm", "p_fm", "n_families", "n_seeds", "unit", "per_level", "shape_p", "driven_by_L0"]
MAX_EXACT_FLIPS = 16
ALPHA = mixed.ALPHA


def _wide(df: pd.DataFrame, metric: str, index: list[str], columns: str) -> pd.DataFrame:
    return df.pivot_table(index=index, columns=columns, values=metric, aggfunc="mean")


def level_contrasts(df: pd.DataFrame, metric: str) -> list[dict]:
    """Level L minus level 0 (the ticket arm's dense run) within (method, shots, family, seed);
    the pairing is :func:`lthvp.analysis.pairing.minus_dense`, the one the dashboard draws. Also
    VP's minus LP's (method ``vp-lp``), the per-level view of the VP - LP slope."""
    pairs = minus_dense(df, metric)
    pairs = pairs[pairs["level"] > 0].rename(columns={"delta": "d"}).dropna(subset=["d"])
    rows = [_row(metric, method, arm, shots, f"L{level}-L0", g[["family", "seed", "d"]].reset_index(drop=True),
                 2 * len(g))
            for (method, arm, shots, level), g in pairs.groupby(["method", "arm", "shots", "level"])]
    ticket = pairs[pairs["arm"] == "ticket"]
    wide = _wide(ticket.assign(family=family_keys(ticket["family"])), "d", ["shots", "level", "family", "seed"],
                 "method") if not ticket.empty else pd.DataFrame()
    if {"vp", "lp"} <= set(wide.columns):
        d_all = (wide["vp"] - wide["lp"]).dropna().rename("d").reset_index()
        rows += [_row(metric, "vp-lp", "ticket", shots, f"L{level}-L0", d, 4 * len(d))
                 for (shots, level), d in d_all.groupby(["shots", "level"])]
    return rows


def slope_per_replicate(part: pd.DataFrame, metric: str, min_levels: int = 2) -> pd.Series:
    """OLS slope of the metric on halvings, per (family, seed) with >= ``min_levels`` levels (dense
    included): cov(x, y) / var(x) inside each group, all groups at once (numpy bincount)."""
    data = part.dropna(subset=[metric])
    if data.empty:
        return pd.Series(dtype=float)
    grouped = data.groupby(["family", "seed"], sort=True)
    g = grouped.ngroup().to_numpy()
    x, y = data["halvings"].to_numpy(float), data[metric].to_numpy(float)
    count = np.bincount(g)
    dx = x - (np.bincount(g, x) / count)[g]
    dy = y - (np.bincount(g, y) / count)[g]
    sxy, sxx = np.bincount(g, dx * dy), np.bincount(g, dx * dx)
    levels = np.bincount(np.unique(np.stack([g, x]), axis=1)[0].astype(int), minlength=len(count))
    slopes = pd.Series(sxy / np.where(sxx > 0, sxx, np.nan), index=grouped.size().index, dtype=float)
    return slopes[levels >= max(2, min_levels)].rename(None)


def shape_per_replicate(part: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (family, seed): ``wo`` = the slope over the sparse levels alone (level > 0) and ``step``
    = the dense level minus that line's value at the dense level's x. Under a straight line the
    step is 0; a slope carried by the dense level alone shows a step and no sparse slope. Needs
    the dense level and >= 2 sparse levels (numpy bincount over group codes, as the slopes)."""
    data = part.dropna(subset=[metric])
    if data.empty:
        return pd.DataFrame(columns=["wo", "step"])
    grouped = data.groupby(["family", "seed"], sort=True)
    g = grouped.ngroup().to_numpy()
    x, y = data["halvings"].to_numpy(float), data[metric].to_numpy(float)
    sparse = (data["level"] > 0).to_numpy()
    k = g.max() + 1
    n_s, n_d = np.bincount(g, sparse, k), np.bincount(g, ~sparse, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm, ym = np.bincount(g, x * sparse, k) / n_s, np.bincount(g, y * sparse, k) / n_s
        dx, dy = (x - xm[g]) * sparse, (y - ym[g]) * sparse
        sxx, sxy = np.bincount(g, dx * dx, k), np.bincount(g, dx * dy, k)
        wo = sxy / np.where(sxx > 0, sxx, np.nan)
        x0, y0 = np.bincount(g, x * ~sparse, k) / n_d, np.bincount(g, y * ~sparse, k) / n_d
        step = y0 - (ym + wo * (x0 - xm))
    levels = np.bincount(np.unique(np.stack([g[sparse], x[sparse]]), axis=1)[0].astype(int), minlength=k)
    out = pd.DataFrame({"wo": wo, "step": step}, index=grouped.size().index)
    return out[(levels >= 2) & (n_d > 0)].dropna()


def _frame(s: pd.Series) -> pd.DataFrame:
    return s.rename("d").rename_axis(["family", "seed"]).reset_index()


def _shape(shape: pd.DataFrame) -> dict:
    if len(shape) < 2:
        return {}
    wo = mixed.fit_crossed(shape.index.get_level_values(0), shape.index.get_level_values(1), shape["wo"])
    step = mixed.fit_crossed(shape.index.get_level_values(0), shape.index.get_level_values(1), shape["step"])
    return {"slope_wo_L0": wo.estimate, "p_wo_L0": wo.p, "shape_p": step.p}


def slope_contrasts(df: pd.DataFrame, metric: str, all_runs: bool = False) -> list[dict]:
    """Slopes per (method, shots) and VP's minus LP's, with the shape checks. Planned analysis: a
    (family, seed) enters only with every level of its (method, shots) (all_runs: >= 2 levels)."""
    rows, slopes, shapes = [], {}, {}
    for (method, shots), part in df.groupby(["method", "shots"]):
        arms = part[(part["arm"] == "ticket")].dropna(subset=[metric])
        need = 2 if all_runs else arms["level"].nunique()
        s = slope_per_replicate(arms, metric, need)
        shape = shape_per_replicate(arms, metric)
        shape = shape[shape.index.isin(s.index)]
        slopes[(method, shots)], shapes[(method, shots)] = s, shape
        if len(s):
            rows.append(_row(metric, method, "ticket", shots, "slope", _frame(s), len(arms), **_shape(shape)))
    for (method, shots), s in slopes.items():
        if method != "vp" or ("lp", shots) not in slopes:
            continue
        d = (s - slopes[("lp", shots)]).dropna()
        if len(d):
            n_runs = int(((df["shots"] == shots) & (df["arm"] == "ticket") & df["method"].isin(["vp", "lp"])).sum())
            shape = (shapes[("vp", shots)] - shapes[("lp", shots)]).dropna()
            rows.append(_row(metric, "vp-lp", "ticket", shots, "vp-lp_slope", _frame(d), n_runs, **_shape(shape)))
    return rows


def paired_arm_contrasts(df: pd.DataFrame, metric: str) -> list[dict]:
    """IMP - each pruning arm at equal level, VP - mapping-only at each level, and each quantized
    arm - the same level in float (same family, seed; :mod:`lthvp.analysis.arm_contrasts`)."""
    arms = by_arm(df, metric)
    rows = imp_vs_pruning(df, metric, arms)
    wide = _wide(df[df["arm"] == "ticket"], metric, ["shots", "level", "family", "seed"], "method")
    if {"vp", "map"} <= set(wide.columns):
        d_all = (wide["vp"] - wide["map"]).dropna().rename("d").reset_index()
        for (shots, level), d in d_all.groupby(["shots", "level"]):
            rows.append(_row(metric, "vp-map", "ticket", shots, f"vp-map_L{level}", d, 2 * len(d)))
    return rows + quant_vs_float(df, metric, arms)


def effects(df: pd.DataFrame, metric: str = "accuracy", dataset: str | None = None,
            all_runs: bool = False) -> pd.DataFrame:
    """Every contrast for one metric, per dataset (all datasets when None; never pooled),
    corrected across shots per question; planned replicates only unless ``all_runs``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if df.empty or metric not in df or df[metric].isna().all():
        return pd.DataFrame(columns=["dataset"] + COLUMNS)
    names = sorted(df["dataset"].unique()) if dataset is None else [dataset]
    parts = [_effects_one(df[df["dataset"] == name], metric, all_runs).assign(dataset=name) for name in names]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=["dataset"] + COLUMNS)
    return pd.concat(parts, ignore_index=True)[["dataset"] + COLUMNS]


def adjust(out: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per question (test_family): Holm and Bonferroni p over its m shot counts, the Bonferroni
    simultaneous intervals (level 1 - alpha/m; one excludes 0 iff p_adj < alpha) and the MDE at
    80% power at the corrected level alpha/m."""
    out = out.copy()
    group = out.groupby("test_family")["p"]
    out["p_holm"] = group.transform(lambda s: pd.Series(holm(s.to_numpy()), index=s.index))
    out["p_adj"] = group.transform(lambda s: pd.Series(mixed.bonferroni(s.to_numpy()), index=s.index))
    m = group.transform("count").clip(lower=1).to_numpy(float)
    se, dof, est = out["se"].to_numpy(float), out["df"].to_numpy(float), out["estimate"].to_numpy(float)
    ok = (dof > 0) & np.isfinite(se)
    q = np.where(ok, stats.t.ppf(1 - alpha / (2 * m), np.where(ok, dof, 1.0)), np.nan)
    out["ci_low_adj"], out["ci_high_adj"] = est - q * se, est + q * se
    out["mde"] = mixed.mde(se, dof, alpha / m)
    return out


def _shape_columns(out: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """``per_level`` beside each slope (its L{k}-L0 estimates) and the ``driven_by_L0`` flag."""
    is_slope = out["contrast"].isin(["slope", "vp-lp_slope"])
    out["per_level"] = [", ".join(f"L{k} {v:+.3g}" for k, v in per_level_estimates(out, m, s)) if sl else ""
                        for m, s, sl in zip(out["method"], out["shots"], is_slope)]
    out["driven_by_L0"] = (is_slope & (out["p_adj"] < alpha) & (out["shape_p"] < alpha)
                           & ~(out["p_wo_L0"] < alpha)).astype(bool)
    return out


def per_level_estimates(table: pd.DataFrame, method: str, shots: str, arm: str = "ticket") -> list[tuple[int, float]]:
    """[(k, estimate of L{k}-L0)] for one method (``vp-lp``: VP's minus LP's) and shot count, by level."""
    rows = table[(table["method"] == method) & (table["arm"] == arm) & (table["shots"] == shots)
                 & table["contrast"].str.fullmatch(r"L\d+-L0")]
    return sorted((int(c[1:].split("-")[0]), float(e)) for c, e in zip(rows["contrast"], rows["estimate"]))


def _effects_one(df: pd.DataFrame, metric: str, all_runs: bool = False) -> pd.DataFrame:
    data = prepare(df, all_runs).dropna(subset=[metric])
    rows = (level_contrasts(data, metric) + slope_contrasts(data, metric, all_runs)
            + paired_arm_contrasts(data, metric))
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_holm", "p_adj", "ci_low_adj", "ci_high_adj",
                                                                      "mde", "per_level", "driven_by_L0")])
    if out.empty:
        return pd.DataFrame(columns=COLUMNS)
    # one question = one test_family: the shot counts of one contrast (L8-L0, slope, imp-random_L8, ...)
    out = _shape_columns(adjust(out))
    out["balanced"] = out["balanced"].astype(bool)
    return out[COLUMNS].reset_index(drop=True)


def low_vs_full(df: pd.DataFrame, metric: str = "accuracy", dataset: str | None = None,
                all_runs: bool = False) -> dict | None:
    """"Most at low data": (VP - LP slope) at the fewest shots minus the same at full data,
    paired within (family, seed), crossed model (family-mean test beside it; a single test).
    None when either end is missing."""
    if dataset is None and df["dataset"].nunique() > 1:
        raise ValueError("low_vs_full needs one dataset")
    data = prepare(df if dataset is None else df[df["dataset"] == dataset], all_runs).dropna(subset=[metric])
    data = data[data["arm"] == "ticket"]
    shots = sorted({s for s in data["shots"] if s.isdigit()}, key=int)
    if not shots or "full" not in set(data["shots"]):
        return None

    def gap(s):
        part = data[data["shots"] == s]
        vp, lp = part[part["method"] == "vp"], part[part["method"] == "lp"]
        need = (lambda x: 2) if all_runs else (lambda x: x["level"].nunique())
        return slope_per_replicate(vp, metric, need(vp)) - slope_per_replicate(lp, metric, need(lp))

    d = _frame((gap(shots[0]) - gap("full")).dropna())
    if d.empty:
        return None
    res = crossed(d)
    res["mde"] = mixed.mde(res["se"], res["df"])
    return {"contrast": f"vp-lp_slope[{shots[0]}]-vp-lp_slope[full]", **res}
