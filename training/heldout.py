"""Held-out loss: how well the base model and the adapter predict poems they never saw.

Two measurements, both in nats per poem token (the characters and punctuation of the body, plus
<eos>; the header is context, never scored), token-weighted, float32, no dropout:

- **valid split, pretraining format**: every valid poem as header (form, 词牌, title) + body, as
  the base model was trained (without the title dropout); for the base model and the adapter.
- **instruction format**: the adapter's own validation examples (`training.sft_data.build_examples`
  on the valid split, seed 1, the 60 most common 词牌, first 512, as `shiren train sft` builds them):
  header with title / keywords / acrostic / first line → poem; for the adapter and, as the "before"
  number, the base model.

A lower number is a better model of real poems, a readability signal that form checks cannot give.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from core.prompt import EOS, body_text, header


def pretrain_examples(rows: list[dict]) -> list[tuple[str, str]]:
    """(header, body + <eos>) for each row, in the pretraining format (no title dropout)."""
    out = []
    for r in rows:
        title = r["title"] if not (r["form"] == "词" and r["title"] == r["cipai"]) else ""
        out.append((header(r["form"], title=title[:30], cipai=r["cipai"]), body_text(r["text"]) + EOS))
    return out


@torch.inference_mode()
def example_nll(model: torch.nn.Module, tokenizer: Any, examples: list[tuple[str, str]], batch_size: int = 32,
                max_len: int = 256) -> dict[str, float]:
    """Summed NLL (nats) of the completions given the prompts: {"nll", "tokens", "nats_per_token", "ppl"}.

    Sequences longer than `max_len` (the model's context) are cut; their cut tokens are not counted.
    """
    from training.sft import collate, encode

    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]) + len(examples[i][1]))
    nll, n = 0.0, 0
    for s in range(0, len(order), batch_size):
        batch = [examples[i] for i in order[s : s + batch_size]]
        x, y = collate(encode(batch, tokenizer), pad, max_len)
        x, y = x.to(device), y.to(device)
        logits = model(input_ids=x, attention_mask=(x != pad).long()).logits[:, :-1].float()
        tgt = y[:, 1:]
        nll += F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=-100,
                               reduction="sum").item()
        n += int((tgt != -100).sum())
    per = nll / max(1, n)
    return {"nll": nll, "tokens": n, "nats_per_token": per, "ppl": math.exp(per)}


def heldout_losses(base_model: torch.nn.Module, adapter_model: torch.nn.Module | None, tokenizer: Any, valid_rows: list[dict], max_poems: int = 0,
                   instruction_examples: int = 512, seed: int = 1, n_cipai: int = 60) -> dict:
    """The held-out table: {"valid (pretraining format)": {"base": …, "adapter": …},
    "valid (instruction format)": {…}}; each cell is `example_nll`'s dict. `adapter_model` may be None."""
    from core.gelv import top_cipai
    from training.sft_data import build_examples

    rows = sorted(valid_rows, key=lambda r: r["id"])
    if max_poems:
        rows = rows[:max_poems]
    pre = pretrain_examples(rows)
    inst = build_examples(valid_rows, seed, set(top_cipai(n_cipai)))[:instruction_examples]
    models = {"base": base_model, **({"adapter": adapter_model} if adapter_model is not None else {})}
    out: dict = {"valid (pretraining format)": {}, "valid (instruction format)": {}}
    for name, m in models.items():
        out["valid (pretraining format)"][name] = {**example_nll(m, tokenizer, pre), "poems": len(pre)}
        out["valid (instruction format)"][name] = {**example_nll(m, tokenizer, inst), "poems": len(inst)}
    return out


def print_heldout(table: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="held-out loss (nats per poem token: body characters, punctuation and <eos>)")
    for c in ("data", "model", "poems", "tokens", "nats/token", "perplexity"):
        t.add_column(c, justify="left" if c in ("data", "model") else "right")
    for data, per in table.items():
        for name, m in per.items():
            t.add_row(data, name, f"{m['poems']:,}", f"{m['tokens']:,}", f"{m['nats_per_token']:.4f}", f"{m['ppl']:.1f}")
    Console().print(t)
