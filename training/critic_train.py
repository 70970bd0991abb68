"""`shiren train critic`: the critic's masked-LM pretraining (resumable), its heads, and the shipped export.

Stages, each resumable or cheap to redo:
  mlm     masked-LM pretraining on the train split (training.critic_mlm), checkpointed in RUN/ckpt;
  human   fresh samples from the current generator for requests drawn from the train split, against
          the real poems of those requests → the human-likeness head (held-out accuracy and AUC);
  rating  users' stars from the database → the rating head (skipped below a handful of ratings);
  export  bf16 safetensors + config + tokenizer + card under models/critic (never optimizer state).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.critic.critic import Critic
from training.critic_heads import LabelledPoem

# Ratings below which the rating head is not fitted at all (nothing to hold out).
MIN_RATINGS_TO_FIT = 10


def human_head_data(poet, dataset_dir: Path, per_form: int, seed: int, log=print) -> tuple[list, list]:
    """(real, generated) LabelledPoems: one generated poem per request, the request drawn from a real poem."""
    from core.types import ShirenError
    from training.corpus import load_split
    from training.two_sample import two_sample_requests

    rows = load_split(dataset_dir, "train")
    rows = [r for i, r in enumerate(rows) if i % 50 == seed % 50]  # a fixed 2% slice: enough to draw from
    pairs = two_sample_requests(rows, per_form, seed)
    real, gen = [], []
    t0 = time.time()
    for k, (req, row) in enumerate(pairs):
        try:
            poem = poet.write(req)[0]
        except ShirenError:
            continue
        real.append(LabelledPoem(row["text"], req.form, row["id"]))
        gen.append(LabelledPoem(poem.text, req.form, row["id"]))
        if k % 200 == 0:
            log(f"  {k}/{len(pairs)} samples ({time.time() - t0:.0f} s)")
    return real, gen


def card_markdown(critic: Critic, generator: str) -> str:
    c, m = critic.card.model, critic.card.metrics
    from core.critic.model import n_params

    def f(k: str) -> str:
        v = m.get(k)
        return "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    rating = (f"held-out MAE {f('rating_valid_mae')}, Spearman {f('rating_valid_spearman')} "
              f"(ridge proxy: {f('proxy_valid_mae')}, {f('proxy_valid_spearman')})" if critic.has_rating
              else "not fitted: too few ratings in the database (feedback rounds refit it from 50 on)")
    by = ("the masked LM's pseudo-log-likelihood (mean ln P of each character masked, in 4 interleaved folds)"
          if critic.card.score == "pll" else "the human-likeness logit")
    return f"""# Shiren critic

A character-level bidirectional Transformer encoder (BERT-style, {c.n_layer} layers, d={c.n_embd},
{c.n_head} heads, {n_params(critic.model) / 1e6:.1f}M parameters) that reads whole poems: it picks among
the generator's drafts, mends the characters it doubts inside the 格律 plan, and explains which
characters it doubts (docs/critic.md). Same character vocabulary as the dataset's tokenizer.

| | |
|---|---|
| masked-LM pretraining | {f("mlm_steps")} steps of {f("mlm_batch")} poems on the train split ({f("mlm_mask_rate")} of characters masked, BERT's 80/10/10) |
| MLM valid loss / accuracy | {f("mlm_valid_loss")} nats / {f("mlm_valid_acc")} (1,000 valid poems, fixed masks) |
| human-likeness head | held-out accuracy {f("human_valid_acc")}, AUC {f("human_valid_auc")} ({f("human_valid_n")} poems) |
| its negatives | samples of `{generator}` ({m.get("human_decoding", "plain")} decoding, as the poet writes by default; regenerate when the generator changes) |
| rating head | {rating} |
| chooses and mends by | {by} |

Files: `config.json` (network shape, which heads are trained, these metrics), `model.safetensors`
(bf16), `tokenizer.json`. Trained with `shiren train critic` on the CPU (2 threads here).
"""


def export(critic: Critic, out: Path, generator: str) -> None:
    import torch

    tj = json.loads((critic.path / "tokenizer.json").read_text("utf-8"))
    critic.save(out, dtype=torch.bfloat16, tokenizer_json=tj)
    (Path(out) / "README.md").write_text(card_markdown(critic, generator), "utf-8")
