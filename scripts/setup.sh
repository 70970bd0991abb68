#!/usr/bin/env bash
# Set up Shiren in ./.venv. Idempotent: rerunning only installs what is missing.
#   bash scripts/setup.sh            # install
#   SHIREN_TORCH=2.13.0 (default)    # the CPU torch pinned for a machine without a GPU;
#                                    # a GPU user installs their CUDA torch into .venv first and keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${SHIREN_TORCH:-2.13.0}" 2>&1 | grep -v '^WARNING: Location' || true
fi
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
# The decode kernel (core/kernels/decode.c) is compiled on first use; build it now so the first poem
# does not wait. Without a C compiler Shiren falls back to its PyTorch decoder (slower, same poems' rules).
.venv/bin/python -c "from core.fastc import load_kernel; import sys; sys.exit(load_kernel() is None)" \
  && echo "decode kernel built" || echo "no C compiler: using the PyTorch decoder (see README, Speed)"
.venv/bin/shiren --help >/dev/null && echo "shiren installed in .venv (activate: source .venv/bin/activate)"
