#!/usr/bin/env bash
# The GPU check, in one short go (a few minutes) on a machine with an NVIDIA GPU:
#   1. the facts: nvidia-smi, torch's CUDA build, the device;
#   2. the GPU tests (the CUDA cases must run, not skip);
#   3. `shiren bench --quick`, whose GPU rows follow the CPU ones.
# Results go to $OUT (default: a fresh temp dir): facts.txt, tests.txt, bench.txt, bench.json, bench.md.
# Fails loudly (exit 2) when torch sees no CUDA device: on a GPU machine that is the thing to fix.
#   bash scripts/gpu_check.sh                 # with .venv (scripts/setup.sh after installing a CUDA torch)
#   PYTHON=python3 OUT=/tmp/gpu bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || command -v "$PY" >/dev/null || PY=python3
OUT=${OUT:-$(mktemp -d -t shiren-gpu-check-XXXXXX)}
mkdir -p "$OUT"
# A private data dir and kernel cache: the check reads only the shipped models and writes only here.
SHIREN_HOME=$(mktemp -d -t shiren-gpu-home-XXXXXX)
export SHIREN_HOME
trap 'rm -rf "$SHIREN_HOME"' EXIT
export SHIREN_KERNEL_DIR="$SHIREN_HOME/kernels"
unset SHIREN_DEVICE  # auto: the check is that CUDA is picked by itself
start=$(date +%s)

{
  echo "== $(date -u +%FT%TZ) $(hostname) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || nvidia-smi || true
  else
    echo "nvidia-smi: not found"
  fi
  "$PY" - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
print(f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
if torch.cuda.is_available():
    i = torch.cuda.current_device()
    p = torch.cuda.get_device_properties(i)
    print(f"device {i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}, "
          f"{p.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported()}")
    print(f"TF32 matmul allowed: {torch.backends.cuda.matmul.allow_tf32} (Shiren decodes in float32 with it off)")
    from core.device import resolve_device
    print(f"Shiren picks: {resolve_device()}")
EOF
} 2>&1 | tee "$OUT/facts.txt"

if ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  {
    echo
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!! gpu_check: torch sees NO CUDA device. This script is for a GPU machine.      !!"
    echo "!! Check the driver (nvidia-smi) and that .venv has a CUDA build of torch       !!"
    echo "!! (README, GPU); a CPU build prints 'CUDA build None' above.                    !!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  } | tee -a "$OUT/facts.txt" >&2
  exit 2
fi

# tests/test_device.py (the engine, the critic and the bench rows on cpu, cpu-plain and cuda), and the
# other CUDA cases: the critic's masked-LM training and a feedback round on the GPU.
echo "== GPU tests" | tee "$OUT/tests.txt"
timeout 150 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_device.py \
  tests/test_critic_mlm.py::test_trains_on_cuda_and_loads_on_the_cpu tests/test_feedback_round.py::test_round_on_cuda \
  2>&1 | tee -a "$OUT/tests.txt"
if grep -q "SKIPPED" "$OUT/tests.txt"; then
  echo "gpu_check: some tests were skipped on a CUDA machine (see $OUT/tests.txt)" >&2
  exit 1
fi

echo "== shiren bench --quick (CPU rows, then the GPU rows)" | tee "$OUT/bench.txt"
COLUMNS=140 timeout 180 "$PY" -m core.cli bench --quick --out "$OUT/bench.json" --markdown "$OUT/bench.md" 2>&1 \
  | tee -a "$OUT/bench.txt"
"$PY" -c "import json, sys; sys.exit('gpu' not in json.load(open(sys.argv[1])))" "$OUT/bench.json" \
  || { echo "gpu_check: the bench has no GPU rows" >&2; exit 1; }

echo "gpu_check: passed in $(( $(date +%s) - start )) s; results in $OUT"
