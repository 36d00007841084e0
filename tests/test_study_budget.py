"""The v3 budget projection (scripts/study_v3_budget.py): its arithmetic, on exact expectations."""

import importlib.util

from lthvp.paths import REPO_ROOT

spec = importlib.util.spec_from_file_location("study_v3_budget", REPO_ROOT / "scripts" / "study_v3_budget.py")
budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(budget)


def rows(*argv):
    ap_args = budget.argparse.Namespace(families=1, levels=1, deepest=1, random=0, random_built=0, oneshot_levels=0,
                                        kshot_seeds=1, full_seeds=1, full_levels=None, full_steps=1000, bf16=False)
    for key, value in zip(argv[::2], argv[1::2]):
        setattr(ap_args, key, value)
    return {name.split(" (")[0]: (n, hours) for name, n, hours in budget.project(ap_args)}


def test_one_cell_costs_what_the_unit_costs_say():
    r = rows()
    assert r["ticket families"] == (2, 2 * 1080 * 0.45 / 3600)
    n, hours = r["VP at 1, 5 and 10 shots"]
    assert n == 2 * 3  # two targets x three shot counts
    assert abs(hours - 2 * (10_000 + 32_000 + 25_600) * 0.0034 / 3600) < 1e-9
    n, hours = r["VP on full data"]
    assert n == 2 and abs(hours - (121_866 + 162_000) * 0.0034 / 3600) < 1e-9


def test_bf16_scales_vp_only_and_families_scale_everything():
    base, half = rows(), rows("bf16", True)
    assert half["ticket families"] == base["ticket families"]
    for key in ("VP at 1, 5 and 10 shots", "VP on full data"):
        assert abs(half[key][1] - 0.49 * base[key][1]) < 1e-9
    ten = rows("families", 10)
    for key, (n, hours) in base.items():
        assert ten[key][0] == 10 * n and abs(ten[key][1] - 10 * hours) < 1e-9
