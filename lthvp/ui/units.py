"""One unit system for everything a person reads: accuracies and calibration errors in %,
differences of them in percentage points (pts), NLL in nats, Brier as it is; classes by name;
steps where the protocol counts steps. Records keep fractions; only what is shown is converted.
Pure (pandas), no Streamlit, no torch."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from lthvp.analysis.effects import per_level_estimates
from lthvp.analysis.verdicts import points_scale
from lthvp.data.catalog import SOURCE_CLASSES

# effects-table columns that are differences in the metric's own scale (the rest: p, df, counts, text)
DIFFERENCE_COLUMNS = ("estimate", "ci_low", "ci_high", "ci_low_adj", "ci_high_adj", "mde", "se", "ci_low_fm",
                      "ci_high_fm", "sd_family", "sd_seed", "sd_resid", "slope_wo_L0")


def difference_unit(metric: str) -> str:
    """'pts' for accuracy and calibration errors (and their temperature-scaled forms), else the metric's own."""
    if points_scale(metric) == 100.0:
        return "pts"
    return "nats" if metric.endswith("nll") else "Brier"


def effects_in_units(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The effects table as people read it (page table and CSV): every difference column scaled to
    points (accuracy, ECE, MCE) and named with its unit, ``per_level`` rewritten in the same unit."""
    k, unit = points_scale(metric), difference_unit(metric)
    out = table.copy()
    if "per_level" in out and {"method", "shots", "contrast", "estimate", "arm"} <= set(out.columns):
        out["per_level"] = [", ".join(f"L{lv} {k * v:+.2f}" for lv, v in per_level_estimates(table, m, s)) if text else ""
                            for m, s, text in zip(out["method"], out["shots"], out["per_level"].fillna(""))]
    for col in DIFFERENCE_COLUMNS:
        if col in out:
            out[col] = k * pd.to_numeric(out[col], errors="coerce")
    names = {c: f"{c} ({unit})" for c in DIFFERENCE_COLUMNS + ("per_level",) if c in out}
    return out.rename(columns=names)


def percent(values) -> list[float | None]:
    """Fractions as percent (None stays None)."""
    return [None if v is None or v != v else 100.0 * float(v) for v in values]


def target_class_names(record: dict) -> list[str]:
    """The target dataset's class names as the record stores them (numbers only for records without).
    A record naming fewer classes than it has per-class values or mapping entries is inconsistent:
    ValueError, so the page names the part it skips instead of drawing made-up class numbers."""
    n = max(len(record.get("per_class_accuracy") or []), len(record.get("mapping") or []))
    names = list(record.get("classes") or [])
    if not names:
        return [str(i) for i in range(n)]
    if len(names) < n:
        raise ValueError(f"the record names {len(names)} classes but has {n} per-class values or mapping entries")
    return [str(c) for c in names]


def source_class_names(preset: str | None) -> list[str]:
    """The source model's class names (from the catalog; empty where it has none, e.g. ImageNet)."""
    return list(SOURCE_CLASSES.get(preset or "mini", []))


def source_name(index: int, names: Sequence[str]) -> str:
    """A source class by name, with its index ('Sandal (5)'); the index alone where no name is known."""
    i = int(index)
    return f"{names[i]} ({i})" if 0 <= i < len(names) else str(i)


def per_class_table(record: dict) -> pd.DataFrame:
    """Per-class test accuracy by class name, in %."""
    pca = record.get("per_class_accuracy") or []
    return pd.DataFrame({"class": target_class_names(record)[:len(pca)], "accuracy (%)": percent(pca)})


def mapping_frame(record: dict) -> pd.DataFrame:
    """The label mapping with names on both sides: target class -> source class."""
    names = source_class_names((record.get("config") or {}).get("preset"))
    mapping = record.get("mapping") or []
    return pd.DataFrame({"target class": target_class_names(record)[:len(mapping)],
                         "source class": [source_name(s, names) for s in mapping]})


def budget_text(config: dict) -> str:
    """A run's training budget in the protocol's own unit: '1000 steps' (VP with a step budget) or '20 epochs'."""
    if config.get("steps") is not None:
        return f"{int(config['steps'])} steps"
    return f"{config['epochs']} epochs" if config.get("epochs") is not None else "the preset's budget"
