#!/usr/bin/env bash
# The long run to a releasable base + adapter, one idempotent stage after another, so that it can be
# started again in every sitting (it is killed when a session ends) and picks up where it stopped:
#
#   nohup bash scripts/release_base.sh >> ~/.local/share/shiren/release.log 2>&1 &
#
# 1. pretraining: resumes the run in SHIREN_HOME/runs/pretrain (or restarts from models/base-snapshot on
#    a machine that lost it); a finished run loads, does no step and returns. Skipped once exported;
# 2. export into SHIREN_HOME/release/base (staged: models/ keeps the shipped base until the new one
#    has been measured);
# 3. the full LoRA pass (resumable) into SHIREN_HOME/adapters/$ADAPTER, then the base's card with one
#    poem per request kind;
# 4. `shiren eval` of the new and of the shipped poet with the same code, for the old-vs-new table.
#
# A stage is skipped when its output exists and is newer than what it was made from; an adapter of
# another base stops the script with the reason (it is never overwritten). What stays by hand
# (docs/training.md, "When the long run ends"): the decoding sweep, the blind reading, the bench side
# by side, copying the release into models/ and retiring the old adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
SHIREN=.venv/bin/shiren
PY=.venv/bin/python
HOME_DIR="$($PY -c 'from core import paths; print(paths.data_home())')"  # where the CLI itself writes
REL="$HOME_DIR/release"
ADAPTER="${ADAPTER:-sft-v2}"
ADIR="$HOME_DIR/adapters/$ADAPTER"
mkdir -p "$REL"
exec 9> "$REL/.lock"
flock -n 9 || { echo "another release_base.sh holds $REL/.lock"; exit 1; }
stage() { echo "[$(date -u +%FT%TZ)] $*"; }

if [ ! -f "$REL/base/model.safetensors" ]; then
  stage "pretraining (resume)"
  while pgrep -f "python .*shiren train pretrain" > /dev/null; do sleep 60; done  # one started by hand
  $SHIREN train pretrain --arch llama --size base --block-size 256 --batch 32 --lr 1.5e-3 --warmup 500 \
    --tokens 1.2e8 --eval-interval 250 --ckpt-minutes 10 --threads 0 --adaptive-threads >> "$HOME_DIR/pretrain.log" 2>&1
  stage "export"
  $SHIREN train export --out "$REL/base"
fi

if [ -f "$ADIR/adapter_model.safetensors" ]; then
  $PY -c 'import sys; from core.adapters import base_mismatch; why = base_mismatch(sys.argv[1], sys.argv[2]); print(why) if why else None; sys.exit(1 if why else 0)' "$ADIR" "$REL/base" \
    || { stage "stop: $ADIR is not an adapter of $REL/base; move it away or set ADAPTER=another-name"; exit 1; }
else
  stage "fine-tune $ADAPTER (resumable)"
  $SHIREN train sft --base "$REL/base" --name "$ADAPTER" --epochs 1 --rank 64 --lora-dropout 0 --adaptive-threads
fi

if ! grep -q "One poem per request kind" "$REL/base/README.md" 2>/dev/null \
   || [ "$ADIR/adapter_model.safetensors" -nt "$REL/base/README.md" ]; then
  stage "model card"
  $SHIREN train card --model "$REL/base" --adapter "$ADIR"
fi

if [ ! -f "$REL/eval-new.json" ] || [ "$ADIR/adapter_model.safetensors" -nt "$REL/eval-new.json" ]; then
  stage "eval: the new poet"
  $SHIREN eval --model-dir "$REL/base" --adapter "$ADIR" --two-sample \
    --two-sample-dir "$REL/two-sample-new" --out "$REL/eval-new.json" > "$REL/eval-new.txt"  # --out: atomic, last
fi
if [ ! -f "$REL/eval-old.json" ]; then
  stage "eval: the shipped poet"
  $SHIREN eval --model-dir models/base --adapter models/adapters/"$(cat models/adapters/ACTIVE)" --two-sample \
    --two-sample-dir "$REL/two-sample-old" --out "$REL/eval-old.json" > "$REL/eval-old.txt"
fi
$PY -m training.eval_compare --old "$REL/eval-old.json" --new "$REL/eval-new.json" --out "$REL/eval-compare.md"
stage "done: $REL (eval-compare.md: old vs new)"
