#!/usr/bin/env bash
# Every GPU measurement in one command (bench/gpu_run.py), on a machine with PyTorch,
# torchvision and Lightning but no network: installs the carried wheels and semprobe into a
# temporary folder, then runs the five stages within 8 minutes. Prepare first with
# scripts/gpu_prepare.sh. Usage: scripts/gpu_run.sh OUT_DIR [--smoke] [--budget-s S]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:?usage: scripts/gpu_run.sh OUT_DIR [--smoke]}" && cd "$1" && pwd)
shift
python=${PYTHON:-python3}
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
if compgen -G "$repo/.whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$repo"/.whl/*.whl
fi
# A copy of the sources, so that the build leaves nothing in the repository.
src="$site/src"
mkdir -p "$src"
(cd "$repo" && git ls-files -z 2>/dev/null | xargs -0 cp --parents -t "$src") \
  || cp -r "$repo"/{semprobe,app,pretrain,pyproject.toml,README.md} "$src"
"$python" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
  --target "$site" "$src" >/dev/null
# Run outside the repository, so that its semprobe/ folder does not shadow the installed one.
cd "$out"
PYTHONPATH="$site:$repo" PYTHONUNBUFFERED=1 "$python" -m bench.gpu_run \
  --data "$repo/.gpu/cifar100-real.npz" --out "$out" "$@"
