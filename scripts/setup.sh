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
# Poem cards (core/card) need a 楷 font; Debian's fonts-lxgw-wenkai (霞鹜文楷) is the one the tests'
# reference images were drawn with. Installed with apt-get when we are root and it is missing.
has_wenkai() { .venv/bin/python -c "import sys; from core.card.fonts import discover
sys.exit(not any(f.family == 'LXGW WenKai' for f in discover()))"; }
if ! has_wenkai; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get install -y -q --no-install-recommends fonts-lxgw-wenkai \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends fonts-lxgw-wenkai; }; } >/dev/null 2>&1 \
      && echo "card font installed (fonts-lxgw-wenkai)" \
      || echo "could not install fonts-lxgw-wenkai: poem cards fall back to text (see README, Poem cards)"
  else
    echo "no 楷 font for poem cards: run 'sudo apt-get install fonts-lxgw-wenkai' (or set SHIREN_CARD_FONT)"
  fi
fi
.venv/bin/shiren --help >/dev/null && echo "shiren installed in .venv (activate: source .venv/bin/activate)"
