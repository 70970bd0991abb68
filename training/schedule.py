"""Learning-rate schedules shared by every training loop (pretraining, SFT, the critic's masked LM)."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up over `warmup` steps, then cosine decay to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def rewarm(step: int, restarted_at: int | None, steps: int) -> float:
    """Multiplier of a linear re-warm-up over `steps` after a restart from weights at `restarted_at`
    (a fresh optimizer: Adam's moments start at zero); 1 outside it or without a restart."""
    if restarted_at is not None and restarted_at <= step < restarted_at + steps:
        return (step - restarted_at + 1) / steps
    return 1.0
