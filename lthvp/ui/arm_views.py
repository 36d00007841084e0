"""How the compression arms look and read on the pages (pure, no Streamlit): one name, line style
and marker per arm, so every chart and sentence tells the arms apart the same way.

Pruning arms are curves against remaining weights (IMP solid, random dashed, the others dotted or
dash-dotted). A quantized arm's level L has exactly IMP level L's mask, so it sits at IMP's
remaining fraction: it is drawn as markers (with their 95% interval as error bars) on that x, and
its bits per weight are in the hover, rather than as a second curve on top of IMP's.
"""

from __future__ import annotations

import pandas as pd

from lthvp.analysis.arm_contrasts import QUANT_BITS, contrast_level
from lthvp.results.config import ARMS, PRUNED_ARMS

ARM_NAMES = {"ticket": "IMP ticket", "random": "random pruning", "control": "rewound-dense control",
             "oneshot": "one-shot magnitude pruning", "oneshot_noft": "one-shot magnitude, no fine-tuning",
             "structured": "L1 filter (structured) pruning", "structured_noft": "L1 filter pruning, no fine-tuning",
             "quant8": "int8 weights", "quant4": "int4 weights"}
DASH = {"ticket": "solid", "random": "dash", "oneshot": "dot", "oneshot_noft": "dashdot", "structured": "longdash",
        "structured_noft": "longdashdot"}
MARKER_ARMS = {"quant8": "diamond-open", "quant4": "square-open", "control": "star"}  # no curve of their own


def arm_order(arms) -> list[str]:
    """Arms in the study's order (IMP first, as lthvp.results.config.ARMS lists them), others after."""
    return sorted(set(arms), key=lambda a: (ARMS.index(a) if a in ARMS else len(ARMS), a))


def arm_name(arm: str) -> str:
    return ARM_NAMES.get(arm, arm)


def legend_suffix(arm: str) -> str:
    """What a curve's legend name adds for its arm ('' for IMP, whose curves are the default)."""
    if arm == "ticket":
        return ""
    if arm.startswith("imp-"):
        return f" (IMP − {arm[4:]})"
    return f" ({arm_name(arm)})"


def trace_style(arm: str) -> dict:
    """Plotly settings for one arm's aggregated trace: mode, line dash, marker symbol and size."""
    if arm in MARKER_ARMS:
        return {"mode": "markers", "dash": "solid", "symbol": MARKER_ARMS[arm], "size": 11}
    return {"mode": "lines+markers", "dash": DASH.get(arm, "solid"), "symbol": "circle", "size": 7}


def hover_note(arm: str) -> str:
    """A hover line for arms whose x does not say everything (quantized: its bits per weight)."""
    if arm in QUANT_BITS:
        return f"{QUANT_BITS[arm]} bits per weight (IMP's mask at this level, weights int{QUANT_BITS[arm]})<br>"
    if arm == "control":
        return "rewind point retrained with no mask<br>"
    return ""


def pruning_contrasts(table: pd.DataFrame, level: int) -> list[tuple[str, pd.DataFrame]]:
    """[(arm, rows of imp-<arm>_L{level})] for every pruning arm the effects table holds at that level."""
    out = []
    for arm in PRUNED_ARMS:
        rows = table[table["contrast"] == f"imp-{arm}_L{level}"]
        if not rows.empty:
            out.append((arm, rows))
    return out


def quant_contrasts(table: pd.DataFrame, level: int) -> list[tuple[str, pd.DataFrame]]:
    """[(arm, rows of <arm>-L{level})] for every quantized arm the effects table holds at that level."""
    return [(arm, table[table["contrast"] == f"{arm}-L{level}"]) for arm in QUANT_BITS
            if (table["contrast"] == f"{arm}-L{level}").any()]


def arm_levels(table: pd.DataFrame, prefix: str) -> list[int]:
    """Levels at which the table holds an arm contrast whose name starts with ``prefix`` ('imp-', 'quant')."""
    names = table.loc[table["contrast"].str.startswith(prefix) & (table["arm"] != "ticket"), "contrast"]
    return sorted({lv for lv in map(contrast_level, names.unique()) if lv is not None})


def pruning_question(arm: str, level: int, metric: str) -> str:
    return (f"IMP − {arm_name(arm)} at equal sparsity, L{level} (`imp-{arm}_L{level}`): positive = IMP's "
            f"{metric} is higher")


def quant_question(arm: str, level: int, metric: str) -> str:
    base = "the dense model" if level == 0 else f"IMP level {level}"
    return (f"{arm_name(arm)} ({QUANT_BITS[arm]} bits) − {base} in float (`{arm}-L{level}`): positive = "
            f"quantization raises {metric}")
