#!/usr/bin/env bash
# Build (or resume) the v3 study's ticket families (docs/STUDY.md): tickets/mini3/family_<seed>/
# for the given source seeds, each with IMP levels 0-9 (1.0% of the weights: the source loses nothing
# measurable down to level 7, docs/STUDY.md) and the random arm (levels 2, 4, 6, 9), then the one-shot
# arm (fine-tuned) at every level and the int8/int4 arms at levels 0 and 9. Every level is saved as
# soon as it is built and the rewind point is kept, so an interrupted build (or a new checkout
# holding the committed levels) continues where it stopped. Two shards at one thread each use
# both cores: `build_v3_families.sh 0 2 4 6 8 &  build_v3_families.sh 1 3 5 7 9`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${THREADS:-1}
for s in "${@:-0}"; do
  start=$(date +%s)
  "$PY" -m lthvp tickets --preset mini3 --family "$s" --levels 9
  "$PY" -m lthvp tickets --preset mini3 --family "$s" --arm oneshot
  "$PY" -m lthvp tickets --preset mini3 --family "$s" --arm quant8 --levels 0,9
  "$PY" -m lthvp tickets --preset mini3 --family "$s" --arm quant4 --levels 0,9
  echo "family $s wall time: $(( $(date +%s) - start )) s"
done
