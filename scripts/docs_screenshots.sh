#!/usr/bin/env bash
# Regenerate the dashboard screenshots in docs/img from a run of the real CIFAR-100 subset:
#
#   semprobe study studies/cifar100_real_seeds_cpu.toml   # once: about 1.5 h on 2 CPU cores
#   bash scripts/docs_screenshots.sh [RUN]                # default: that study's seed 0
#
# MODEL (default byol-sem), COMPARE (the Compare view's right model, default byol), OUT
# (default docs/img) and VIEWS (default: all) change what is shot.
# Every view is shot on the run's SEM model at the simplex whose vertex assignment carries the
# most information about the class (over its permutation baseline). Needs Chromium and
# chromedriver, as the browser tests do (see app/screenshots.py).
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/cifar100-real-seeds-cpu/seed-0}
model=${MODEL:-byol-sem}
python=${PYTHON:-python}
if [ ! -f "$run/run.json" ]; then
    echo "error: no run directory at $run (run the study named above first)" >&2
    exit 2
fi
simplex=$("$python" - "$run" "$model" <<'PY'
import sys

from semprobe.rundir import Run
from semprobe.simplex_information import run_information

table = run_information(Run(sys.argv[1]).model(sys.argv[2]))
print(int(table.loc[table["mi_class_excess"].idxmax(), "simplex"]))
PY
)
echo "screenshots of $run/$model at simplex $simplex"
# shellcheck disable=SC2086  # VIEWS is a list of view names
"$python" -m semprobe.app.screenshots --out "${OUT:-docs/img}" "$run" \
    --model "$(basename "$run")/$model" --simplex "$simplex" \
    --set "compare_b=$(basename "$run")/${COMPARE:-byol}" ${VIEWS:+--views $VIEWS}
