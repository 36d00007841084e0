#!/usr/bin/env bash
# Regenerate the shipped mini-study bundle (cache/mini_digits.zip) from the shipped ticket family.
# Two sweep shards run side by side with one torch thread each (faster than one 2-thread process
# on a 2-core machine); both write into one store, then the store is exported.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STORE=${STORE:-cache/runtime/mini_bundle_store}
AXES=(--preset mini --dataset digits --method vp lp --level 0 1 2 3 4 5 6 7 8 --shots 1 2 5 10 full
      --seed 0 1 2 --random-levels 2 4 6 8 --random-shots full --store "$STORE")
start=$(date +%s)
OMP_NUM_THREADS=1 "$PY" -m lthvp sweep "${AXES[@]}" --shard 0/2 &
OMP_NUM_THREADS=1 "$PY" -m lthvp sweep "${AXES[@]}" --shard 1/2 &
wait
echo "sweep wall time: $(( $(date +%s) - start )) s"
"$PY" -m lthvp export cache/mini_digits.zip --store "$STORE" \
  --note "mini study: digits, levels 0-8 x {vp, lp} x shots {1,2,5,10,full} x seeds {0,1,2} + random arm L2/4/6/8 full; scripts/regenerate_mini_bundle.sh"
