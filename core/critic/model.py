"""The critic network: a small pre-LN Transformer encoder (BERT-style, bidirectional), nanoGPT style.

Input: <bos> <form> the poem's characters and punctuation <eos>, padded with <pad>. Outputs: masked-LM
logits (tied to the input embedding) at any positions, and two poem-level heads on the mean of the
final hidden states: `human` (logit: a real poem rather than the generator's) and `rating` (a user's
stars, centred). No I/O here: core.critic.critic loads and saves it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class CriticConfig:
    vocab_size: int  # the tokenizer's size + 1: the last id is [MASK]
    pad_id: int = 0
    block_size: int = 160  # the longest 词 the decoder writes fits
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    dropout: float = 0.0

    @property
    def mask_id(self) -> int:
        return self.vocab_size - 1


class Block(nn.Module):
    def __init__(self, cfg: CriticConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.out = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        # keep: (B, 1, 1, T) True where a key is a real token; every query sees the whole poem.
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=self.dropout if self.training else 0.0)
        x = x + F.dropout(self.proj(a.transpose(1, 2).reshape(B, T, C)), self.dropout, self.training)
        return x + F.dropout(self.out(F.gelu(self.fc(self.ln2(x)))), self.dropout, self.training)


class CriticModel(nn.Module):
    def __init__(self, cfg: CriticConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.human = nn.Linear(cfg.n_embd, 1)
        self.rating = nn.Linear(cfg.n_embd, 1)
        self.apply(self._init)
        for b in self.blocks:  # GPT-2's scaled init of the residual projections
            for lin in (b.proj, b.out):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids → (B, T, d) final hidden states."""
        T = ids.shape[1]
        keep = (ids != self.cfg.pad_id)[:, None, None, :]
        x = self.tok(ids) + self.pos(torch.arange(T, device=ids.device))[None]
        for b in self.blocks:
            x = b(x, keep)
        return self.ln_f(x)

    def mlm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(..., d) hidden states → (..., V) masked-LM logits (the [MASK] id is never predicted)."""
        logits = h @ self.tok.weight.t() + self.mlm_bias
        logits[..., self.cfg.mask_id] = -math.inf
        return logits

    def pooled(self, h: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Mean of the hidden states over real tokens: (B, d)."""
        m = (ids != self.cfg.pad_id).float()[..., None]
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)

    def heads(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(human-likeness logit, rating) per poem, both (B,)."""
        p = self.pooled(self.hidden(ids), ids)
        return self.human(p).squeeze(-1), self.rating(p).squeeze(-1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
