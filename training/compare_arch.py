"""A short, equal-budget comparison of GPT-2 and Llama-style models: valid loss per CPU-minute.

    python -m training.compare_arch --steps 80 --batch 16
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from core import paths
from training.model import SIZES, GPTConfig, n_params
from training.pretrain import TrainConfig, train
from training.tokenizer import load_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", default="base")
    ap.add_argument("--out", type=Path, default=Path("runs/compare_arch.json"))
    args = ap.parse_args()
    from training.data import token_stream

    ds = paths.dataset_dir()
    tok = load_tokenizer(paths.tokenizer_dir())
    train_s, valid_s = token_stream(ds, "train", tok), token_stream(ds, "valid", tok)
    results = []
    for arch in ("gpt2", "llama"):
        tmp = Path(tempfile.mkdtemp(prefix=f"cmp-{arch}-"))
        mc = GPTConfig(arch=arch, vocab_size=len(tok), **SIZES[args.size])
        cfg = TrainConfig(out_dir=str(tmp), dataset_dir=str(ds), model=mc, batch_size=args.batch,
                          max_steps=args.steps, warmup_steps=max(1, args.steps // 10), eval_interval=10**9,
                          ckpt_minutes=1e9, lr=2e-3)
        t0 = time.time()
        tr = train(cfg, tok, train_s, valid_s, progress=False)
        wall = time.time() - t0
        vl = tr.valid_loss()
        results.append({"arch": arch, "params": n_params(tr.model), "steps": args.steps,
                        "tokens": args.steps * tr.tokens_per_step, "seconds": round(wall, 1),
                        "tok_s": round(args.steps * tr.tokens_per_step / wall), "valid_loss": round(vl, 4)})
        print(results[-1], flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    # Loss reached per CPU-minute: lower loss in less time wins; compare losses at equal token budgets
    # and report the time each needed.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    for r in results:
        print(f"{r['arch']:6s} params={r['params']:,} valid_loss={r['valid_loss']:.3f} "
              f"time={r['seconds']:.0f}s tok/s={r['tok_s']:,}")


if __name__ == "__main__":
    main()
