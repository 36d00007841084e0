#!/usr/bin/env bash
# The v2 mini study from nothing: three ticket families, the VP learning rate chosen on validation,
# the sweep, the bundle, figures and README findings. Every stage resumes where it stopped
# (families per level, the sweep through its store), so rerun this script after an interruption.
#
#   scripts/regenerate_mini_study.sh            # everything
#   STAGE=sweep scripts/regenerate_mini_study.sh  # one stage: families | lr | sweep | checkpoint | export
#
# The sweep takes longer than one working session and its store lives in an ignored folder, so
# `STAGE=checkpoint` writes the runs finished so far as a new part under sweeps/mini_v2/ (commit
# it); the sweep and export stages first import every committed part, so a fresh checkout resumes.
# (The shipped bundle replaced the v2 study's parts once its sweep was done.)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STORE=${STORE:-cache/runtime/mini_v2_store}
STAGE=${STAGE:-all}
PARTS=${PARTS:-sweeps/mini_v2}
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

if [[ $STAGE == all || $STAGE == families ]]; then
  stamp "families 0 1 2 (two builds side by side, one thread each)"
  start=$(date +%s)
  scripts/build_mini_families.sh 0 2 & scripts/build_mini_families.sh 1; wait
  stamp "families wall time: $(( $(date +%s) - start )) s"
fi
if [[ $STAGE == all || $STAGE == lr ]]; then
  stamp "VP learning-rate grid on validation (family 0, level 0)"
  OMP_NUM_THREADS=2 "$PY" scripts/choose_vp_lr.py | tee cache/runtime/lr_grid.md
  stamp "set MINI.vp_lr in lthvp/results/presets.py to the chosen value before the sweep if it changed"
fi
if [[ $STAGE == sweep || $STAGE == export ]] && [[ -d $PARTS ]]; then
  "$PY" scripts/sweep_checkpoint.py restore --store "$STORE" --parts "$PARTS"
fi
if [[ $STAGE == all || $STAGE == sweep ]]; then
  # Seed-major order: every seed completes the whole grid for all families before the next seed
  # starts, so an interrupted sweep still leaves complete, paired replicates. SHARD=K/2 runs one
  # half (one process per core); without it both halves run here side by side.
  AXES=(--preset mini --dataset digits --family 0 1 2 --method vp map lp --level 0 2 4 6 8
        --shots 1 5 10 full --random-levels 2 4 6 8 --random-shots 5 full --store "$STORE")
  sweep_shard() {  # a second pass retries what failed in the first (e.g. a family still being built)
    for pass in 1 2; do
      for seed in 0 1 2 3 4; do
        OMP_NUM_THREADS=1 "$PY" -m lthvp sweep "${AXES[@]}" --seed "$seed" --shard "$1" || true
      done
    done
  }
  start=$(date +%s)
  if [[ -n ${SHARD:-} ]]; then sweep_shard "$SHARD"; else sweep_shard 0/2 & sweep_shard 1/2; wait; fi
  stamp "sweep wall time: $(( $(date +%s) - start )) s"
  if [[ -z ${SHARD:-} ]]; then  # a last pass runs (and reports) anything still missing
    OMP_NUM_THREADS=1 "$PY" -m lthvp sweep "${AXES[@]}" --seed 0 1 2 3 4
  fi
fi
if [[ $STAGE == all || $STAGE == checkpoint ]]; then
  "$PY" scripts/sweep_checkpoint.py save --store "$STORE" --parts "$PARTS"
fi
if [[ $STAGE == all || $STAGE == export ]]; then
  "$PY" -m lthvp export cache/mini_digits.zip --store "$STORE" --dataset digits --family 0 1 2 \
    --note "mini study v2: 3 ticket families x levels {0,2,4,6,8} x {vp,map,lp} x shots {1,5,10,full} x seeds 0-4 + random arm L2/4/6/8 at {5,full}; scripts/regenerate_mini_study.sh"
  "$PY" -m lthvp figures cache/mini_digits.zip --out docs/figures --readme README.md
fi
