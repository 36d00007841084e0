"""Planning the v3 study's power: the minimum detectable effect of each pre-registered claim at
the v3 design, from variance components measured before the main sweep.

The pilot has one family, so it cannot estimate the between-family component; the v2 study's
fitted components (family, seed, residual SDs of every claim's per-(family, seed) contrast,
``python -m lthvp effects --json`` on cache/mini_digits.zip) are the planning values, carried
to the v3 design's families x seeds with the crossed model's expected mean squares:

    E[MS_F] = s2_e + S s2_f,  E[MS_S] = s2_e + F s2_s,  MS_E = s2_e
    Var(mu_hat) = (E[MS_F] + E[MS_S] - s2_e) / (F S),  Satterthwaite df,

and the MDE at 80% power at the Bonferroni level 0.05 / m (m = shot counts per claim), as the
analysis will test it (:func:`lthvp.analysis.mixed.mde`). Prints a markdown table for docs/STUDY.md.

    .venv/bin/python scripts/study_v3_mde.py --families 10 --seeds 5 --full-seeds 2
"""

from __future__ import annotations

import argparse
import math

import pandas as pd

from lthvp.analysis import mixed
from lthvp.analysis.effects import effects
from lthvp.paths import BUNDLE_DIR
from lthvp.results.store import flat_row, read_bundle

CLAIMS = {  # (metric, method, arm, contrast) -> the claim it stands for
    ("accuracy", "vp-lp", "ticket", "vp-lp_slope"): "sparsity costs VP more than LP (VP - LP slope)",
    ("accuracy", "vp-map", "ticket", "vp-map_L0"): "the prompt helps beyond its mapping (VP - map, L0)",
    ("accuracy", "vp", "ticket", "slope"): "VP accuracy slope",
    ("accuracy", "lp", "ticket", "slope"): "LP accuracy slope",
    ("ece", "vp", "ticket", "slope"): "VP ECE slope",
    ("ece", "lp", "ticket", "slope"): "LP ECE slope",
}


def planned(sd_f: float, sd_s: float, sd_e: float, n_f: int, n_s: int, m: int) -> tuple[float, float, float]:
    """(SE, df, MDE) of the crossed model's mean at n_f families x n_s seeds."""
    s2f, s2s, s2e = (0.0 if v != v else v * v for v in (sd_f, sd_s, sd_e))
    ms_f, ms_s, df_e = s2e + n_s * s2f, s2e + n_f * s2s, (n_f - 1) * (n_s - 1)
    # the analysis's rule (mixed._combine): a zero component's term leaves with the -MS_E it cancels
    terms = {(True, True): [(ms_f, n_f - 1), (ms_s, n_s - 1), (-s2e, df_e)], (True, False): [(ms_f, n_f - 1)],
             (False, True): [(ms_s, n_s - 1)], (False, False): [(s2e, df_e)]}[(s2f > 0, s2s > 0)]
    var = max(sum(v for v, _ in terms), 1e-18) / (n_f * n_s)
    df = mixed.satterthwaite(terms)
    se = math.sqrt(var)
    return se, df, float(mixed.mde(se, df, alpha=mixed.ALPHA / m))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=5, help="seeds per family at k shots")
    ap.add_argument("--full-seeds", type=int, default=2, help="seeds per family on full data")
    ap.add_argument("--bundle", default=str(BUNDLE_DIR / "mini_digits.zip"))
    a = ap.parse_args(argv)
    table = pd.DataFrame([flat_row(r.to_json()) for r in read_bundle(a.bundle)])
    print("| claim | shots | v2: SD family / seed / residual (pts) | v2 MDE (3 x 5) | v3 SE | v3 df | v3 MDE |")
    print("|---|---|---|---|---|---|---|")
    for metric in sorted({k[0] for k in CLAIMS}):
        out = effects(table, metric)
        for (m_, method, arm, contrast), claim in CLAIMS.items():
            if m_ != metric:
                continue
            rows = out[(out["method"] == method) & (out["arm"] == arm) & (out["contrast"] == contrast)]
            m = len(rows)
            for _, r in rows.iterrows():
                seeds = a.full_seeds if r["shots"] == "full" else a.seeds
                se, df, mde = planned(r["sd_family"], r["sd_seed"], r["sd_resid"], a.families, seeds, m)
                sds = " / ".join(f"{100 * v:.2f}" if v == v else "-" for v in (r["sd_family"], r["sd_seed"], r["sd_resid"]))
                print(f"| {claim} | {r['shots']} | {sds} | {100 * r['mde']:.2f} | {100 * se:.2f} | {df:.1f} | "
                      f"**{100 * mde:.2f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
