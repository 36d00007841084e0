"""The Run page's training-budget controls, labelled by what each method's protocol counts: VP on a
replicated family runs an optimizer-step budget, VP elsewhere and LP run epochs, mapping-only trains
nothing. 0 keeps the preset's budget (named in the label), so a default run shares its job and hash
with the study's runs."""

from __future__ import annotations

from lthvp.compute import run_plan
from lthvp.results.presets import Preset


def vp_counts_steps(preset: Preset, family: int | None) -> bool:
    """VP's protocol counts steps on a replicated family of a preset with a step budget (resolve's rule)."""
    return family is not None and bool(preset.vp_steps)


def _by_shots(table: dict) -> str:
    values = sorted({int(v) for v in table.values()})
    return f"{values[0]:,}" if len(values) == 1 else "/".join(f"{v:,}" for v in values) + " by shots"


def budget_labels(preset: Preset, family: int | None) -> dict[str, tuple[str, str, str]]:
    """method -> (RunConfig field, label, widget key) of its budget control."""
    if vp_counts_steps(preset, family):
        vp = ("steps", f"VP steps (0 = preset: {_by_shots(preset.vp_steps)})", "r_steps")
    else:
        vp = ("epochs", f"VP epochs (0 = preset: {_by_shots(preset.vp_epochs)})", "r_vp_epochs")
    return {"vp": vp, "lp": ("epochs", f"LP epochs (0 = preset: {preset.lp_epochs})", "r_epochs")}


def budget_controls(container, preset: Preset, family: int | None, methods: list[str]) -> dict[str, dict]:
    """One number input per chosen method that trains (in its protocol's unit); returns the config
    fields each method's runs get ({} = the preset's budget)."""
    out: dict[str, dict] = {}
    labels = budget_labels(preset, family)
    for method in [m for m in ("vp", "lp") if m in methods]:
        field, label, key = labels[method]
        value = container.number_input(label, min_value=0, max_value=100_000 if field == "steps" else 500, value=0,
                                       step=100 if field == "steps" else 1, key=key, bind="query-params",
                                       help="mapping-only runs train nothing (the prompt stays at its start)")
        out[method] = {field: int(value)} if value else {}
    if "map" in methods and not out:
        container.caption("Mapping-only: no training budget (the prompt stays at its start).")
    return out


def grid(levels, methods, shots, seeds, budget: dict[str, dict], **fixed) -> tuple[list, list[str]]:
    """run_plan.grid per method, each with its own budget field."""
    configs, errors = [], []
    for method in methods:
        c, e = run_plan.grid(levels, [method], shots, seeds, **fixed, **budget.get(method, {}))
        configs += c
        errors += e
    return configs, sorted(set(errors))
