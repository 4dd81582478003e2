#!/usr/bin/env bash
# Prepare what a GPU machine without network needs beside the sources, in folders git ignores:
#   .gpu/cifar100-real.npz  the real CIFAR-100 subset as one array of its PNG files' bytes (150
#                           training images per class, every test image: about 44 MB) with its
#                           coarse and WordNet superclass tables (bench/gpu_pack.py)
#   .whl/                   the pure-Python packages semprobe needs that a bare PyTorch image lacks
#                           (lightly, plotly), for Python 3.12
# Usage: scripts/gpu_prepare.sh [DATA_DIR]   (default ../shared/data/cifar100-real)
# Then, on the GPU machine: scripts/gpu_run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/cifar100-real}
python=${PYTHON:-.venv/bin/python}

rm -rf .whl && mkdir -p .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux2014_x86_64 -d .whl \
  "lightly==$("$python" -c 'import importlib.metadata as m; print(m.version("lightly"))')" \
  "plotly==$("$python" -c 'import importlib.metadata as m; print(m.version("plotly"))')"
"$python" -m bench.gpu_pack "$data" --out .gpu/cifar100-real.npz --train-per-class 150
du -sh .gpu .whl
