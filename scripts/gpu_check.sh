#!/usr/bin/env bash
# The one-script GPU check: bash scripts/gpu_check.sh [OUT] [--device cuda|cpu] [more gpu_check options]
#
# Runs python -m d3s_vot.tools.gpu_check (environment, smoke runs, sync counts, bench, float64 parity,
# training AMP step; about 5-7 minutes on one GPU) and writes OUT/gpu_check.json and OUT/gpu_check.log
# (default OUT: gpu_check_out/). Before that it copies the parity fixtures from ../shared/parity into
# gpu_check_fixtures/parity (ignored by git) when they are not there yet, so that a copy of the working
# tree run elsewhere (without ../shared) still has them. --device cpu is the dry run CI uses.
set -euo pipefail
cd "$(dirname "$0")/.."

out="gpu_check_out"
if [[ $# -gt 0 && "$1" != --* ]]; then
    out="$1"
    shift
fi

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
if ! "$python" -c "import torch, cv2, numpy" 2>/dev/null; then
    echo "error: $python cannot import torch, cv2 and numpy; set PYTHON to an interpreter that has them" >&2
    exit 2
fi

fixtures="gpu_check_fixtures/parity"
if [[ ! -f "$fixtures/tracker_ref.npz" && -f ../shared/parity/tracker_ref.npz ]]; then
    mkdir -p "$fixtures"
    cp ../shared/parity/make_weights.py ../shared/parity/tracker_ref.npz ../shared/parity/tracker_head_seed0.npz \
        "$fixtures/"
fi

exec "$python" -m d3s_vot.tools.gpu_check --out "$out" "$@"
