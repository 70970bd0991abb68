#!/usr/bin/env python
"""Proof that the ratings → preference fine-tuning loop works, with a simulated rater who likes water imagery.

    python scripts/simulate_feedback.py --tiny                     # a tiny random model: seconds
    python scripts/simulate_feedback.py --model-dir models/base    # the shipped model + its active adapter

Simulated users ask for poems through the normal path (Poet.write → Store.record_poems → Store.rate) into
a real SQLite database (a fresh one under --home unless --database-url), one feedback round runs (DPO on
the active adapter, gated promotion), and the liked property (water characters per poem) is compared
before/after on held-out requests, with 95% bootstrap confidence intervals, next to format/rhyme/tone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="Use a tiny random model (core.testing) instead of a real one.")
    ap.add_argument("--model-dir", type=Path, default=None, help="Base model dir (default: SHIREN_MODEL_DIR or models/base).")
    ap.add_argument("--adapter", default="auto",
                    help="Starting adapter folder, 'auto' (the active/shipped one) or 'none' (fresh LoRA on the base).")
    ap.add_argument("--tiny-embd", type=int, default=64, help="Width of the --tiny model.")
    ap.add_argument("--tiny-cluster", type=float, default=1.5,
                    help="Shared embedding component of the liked chars in the --tiny model (0: pure noise).")
    ap.add_argument("--home", type=Path, default=None, help="SHIREN_HOME for the run (default: a new temp dir).")
    ap.add_argument("--database-url", default=None, help="Database (default: SQLite in --home).")
    ap.add_argument("--requests", type=int, default=96, help="Training requests rated by the simulated users.")
    ap.add_argument("--poems-per-request", type=int, default=4)
    ap.add_argument("--heldout", type=int, default=80, help="Held-out requests for the before/after table.")
    ap.add_argument("--gate-requests", type=int, default=24, help="Fixed requests for the promotion gates.")
    ap.add_argument("--steps", type=int, default=120, help="Max DPO steps.")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=None, help="Learning rate (default 1e-3 with --tiny, else 1e-4).")
    ap.add_argument("--beta", type=float, default=None, help="DPO beta (default 0.5 with --tiny, else 0.1).")
    ap.add_argument("--sft-weight", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy CPU).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="Also write the full result as JSON here.")
    a = ap.parse_args(argv)

    home = a.home or Path(tempfile.mkdtemp(prefix="shiren-sim-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SHIREN_HOME"] = str(home)
    import torch

    torch.set_num_threads(max(1, a.threads))
    from core import paths
    from core.adapters import resolve_adapter
    from db.store import Store
    from training.feedback import FeedbackConfig
    from training.simulated_rater import WATER, make_tiny_setup, run_simulation

    if a.tiny:
        base_dir, adapter = make_tiny_setup(home, n_embd=a.tiny_embd, cluster=WATER if a.tiny_cluster else "",
                                        cluster_scale=a.tiny_cluster)
        if a.adapter == "none":
            adapter = None
    else:
        base_dir = Path(a.model_dir or paths.model_dir())
        if not (base_dir / "config.json").exists():
            print(f"no model at {base_dir}; pass --model-dir, or --tiny for a tiny random model", file=sys.stderr)
            return 2
        adapter = None if a.adapter == "none" else (resolve_adapter() if a.adapter == "auto" else Path(a.adapter))
    lr = a.lr if a.lr is not None else (1e-3 if a.tiny else 1e-4)
    beta = a.beta if a.beta is not None else (0.5 if a.tiny else 0.1)
    cfg = FeedbackConfig(lr=lr, beta=beta, max_steps=a.steps, epochs=a.epochs, batch_size=a.batch,
                         sft_weight=a.sft_weight, seed=a.seed)
    print(f"home {home}\nbase {base_dir}\nstarting adapter {adapter or 'none'}\nconfig {cfg}")
    t0 = time.time()
    with Store(a.database_url or f"sqlite:///{home / 'shiren.db'}") as store:
        out = run_simulation(store, base_dir, adapter, train_requests=a.requests, poems_per_request=a.poems_per_request,
                             heldout_requests=a.heldout, gate_requests=a.gate_requests, config=cfg, seed=a.seed,
                             home=home)
    out["total_seconds"] = round(time.time() - t0, 1)
    if "table" in out:
        print("\n" + out["table"])
    print(f"\nfeedback round: {out['round']['outcome']} in {out['round_seconds']}s "
          f"(rating {out['rating_seconds']}s, total {out['total_seconds']}s)")
    if a.json:
        a.json.write_text(json.dumps(out, ensure_ascii=False, indent=1, default=str), "utf-8")
    return 0 if out["round"]["outcome"] in ("promoted", "candidate") else 1


if __name__ == "__main__":
    sys.exit(main())
