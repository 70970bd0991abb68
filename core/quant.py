"""Weight-only int8 for serving: each output row of a linear layer as int8 codes and one float scale.

Why: at n=1 a decode step reads every weight once and does little arithmetic with it, so its time is
the bytes streamed from cache (docs/bench.md, "A larger model"); int8 halves bf16's bytes. Symmetric,
per output row (the scale is absmax / 127; rows are the kernel's output columns, so the kernel scales
each product once, when it stores it). This module is the one definition: the C kernel gets the codes
and scales (core.fastc.panels_q8), every other path (the PyTorch decoder, the HF reference model, the
critic's view of the generator) gets `dequantize(...)` of the same codes, so all paths compute with
the same numbers and a seed still gives the same poems on each.
"""

from __future__ import annotations

import torch

Q8_MAX = 127


def quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float weights → int8 codes (out, in) and float32 scales (out,)."""
    w = w.float()
    scale = w.abs().amax(1) / Q8_MAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: codes 0, any scale
    q = torch.round(w / scale[:, None]).clamp_(-Q8_MAX, Q8_MAX).to(torch.int8)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale[:, None]


def is_layer_linear(name: str) -> bool:
    """The matrices served in int8: the transformer blocks' projections (the embedding and the output
    head stay bf16: the head's logits feed the sampler directly)."""
    return name.startswith("model.layers.") and name.endswith("proj.weight")
