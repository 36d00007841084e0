#!/usr/bin/env bash
# Build (or resume) the mini study's ticket families: tickets/mini/family_<seed>/ for the given
# source seeds (default 0 1 2). Each level is saved as soon as it is trained, so an interrupted
# build continues where it stopped. Two families side by side at one torch thread each use
# both cores of a 2-core machine: e.g. `build_mini_families.sh 0 2 &  build_mini_families.sh 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-1}
for seed in "${@:-0 1 2}"; do
  for s in $seed; do
    start=$(date +%s)
    OMP_NUM_THREADS=$THREADS "$PY" -m lthvp tickets --preset mini --family "$s"
    echo "family $s wall time: $(( $(date +%s) - start )) s"
  done
done
