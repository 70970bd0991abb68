"""Reading a text back through a causal LM: ln P of each token given a prompt and the tokens before it.

The one definition that the poet's mend guard (core.poet) and the reader-agreement study
(training.reader_agreement) both use, so that "the generator's likelihood" means the same number in both.
"""

from __future__ import annotations

from typing import Any

import torch

# Longest prompt + text scored in one row (the models' context).
MAX_TOKENS = 256


@torch.inference_mode()
def causal_token_logprobs(model: Any, seqs: list[tuple[list[int], list[int]]], pad_id: int,
                          batch_size: int = 32) -> list[torch.Tensor]:
    """For each (prompt ids, text ids): a float32 (n,) tensor of ln P(text token | prompt, text before it),
    n = the text tokens that fit in `MAX_TOKENS` after the prompt. Rows are batched by length, padded with
    `pad_id` under an attention mask; float32 forward."""
    out: list[torch.Tensor] = [torch.zeros(0)] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    for s in range(0, len(order), batch_size):
        rows = order[s : s + batch_size]
        width = min(MAX_TOKENS, max(len(seqs[i][0]) + len(seqs[i][1]) for i in rows))
        x = torch.full((len(rows), width), pad_id, dtype=torch.long)
        for r, i in enumerate(rows):
            seq = (seqs[i][0] + seqs[i][1])[:width]
            x[r, : len(seq)] = torch.tensor(seq)
        lp = torch.log_softmax(model(input_ids=x, attention_mask=(x != pad_id).long()).logits.float(), -1)
        for r, i in enumerate(rows):
            p, t = seqs[i]
            n = min(len(t), width - len(p))
            out[i] = lp[r, len(p) - 1 : len(p) - 1 + n].gather(1, torch.tensor(t[:n], dtype=torch.long)[:, None])[:, 0]
    return out
