#!/usr/bin/env bash
# The GPU check (issue 14, item 3): one command, at most 8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh [--quick] [--out PATH] [--budget S] [--device auto|cpu|cuda]
#
# Writes reports/benchmarks/gpu.json (atomically, after every section) with benchmarks/gpu_check.py,
# which keeps its own time budget (450 s by default) and skips what would not fit; this wrapper
# adds a hard stop at 8 minutes. Without CUDA it runs the CPU variants and writes "gpu": false.
# Python: the project's .venv where it has torch, else python3 (a GPU image's own torch).
# Exit status: 0 all sections ok or skipped, 1 one failed, 124 killed by the hard stop.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c 'import torch, torchvision' 2>/dev/null; then
    PY=.venv/bin/python
  else
    PY=python3
  fi
fi
export PYTHONUNBUFFERED=1
exec timeout --signal=TERM --kill-after=15 480 "$PY" benchmarks/gpu_check.py "$@"
