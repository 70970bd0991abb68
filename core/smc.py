"""Resampling the drafts as they are written: sequential Monte Carlo over the constrained decoder.

Masking draws each character from the sampling distribution q restricted to what the 格律 rules allow and
renormalised. That is not q conditioned on the whole poem being legal: a draft that wrote itself into a
corner (a clause whose rhyme slot the poet barely wants any legal character for) is kept as if nothing had
happened, and its rhyme becomes filler. SMC steering (Lew et al., 2023; Loula et al., ICLR 2025) corrects
for it. Each draft carries an importance weight, the product over its sampled slots of the mass the poet's
own distribution (the expert at the request's temperature) puts on the legal set there. At every clause
end but the last, when the weights' effective sample size falls below `ess` × drafts, the drafts are
resampled by weight (systematic resampling, one uniform from the request's generator): a forced draft
gives its place to a copy of one that was not, and the copies diverge from the next character on.

One definition: the reference path (core.generate) and the engine (core.engine) both call these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# The weight of a draft that hit a dead end (the rules left it nothing legal): it is always replaced.
DEAD = -1.0e9


@dataclass(frozen=True)
class Resample:
    """`ess`: resample when the effective sample size is below this share of the drafts (0: never)."""

    ess: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.ess <= 1.0:
            raise ValueError(f"resampling threshold must be in [0, 1], got {self.ess}")


def legal_log_mass(expert: torch.Tensor, mask: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """(B,) float64 ln Σ_{legal} softmax(expert / T): how much the poet wants any legal character here."""
    t = temperature if isinstance(temperature, float) else temperature.double()[:, None]
    x = expert.double() / t
    return torch.logsumexp(x.masked_fill(~mask, -math.inf), -1) - torch.logsumexp(x, -1)


def needs_resampling(logw: torch.Tensor, r: Resample) -> bool:
    """Whether the weights' effective sample size 1 / Σ w² (w normalised) is below r.ess × drafts."""
    w = torch.softmax(logw.double(), 0)
    return float(1.0 / (w * w).sum()) < r.ess * logw.shape[0]


def resamples_here(plan_slots: list, slot: int, logw: torch.Tensor, r: Resample | None) -> bool:
    """Whether the drafts are resampled before `slot`: a clause end (punctuation) that is not the poem's
    last slot, with resampling on and the weights too uneven (`needs_resampling`)."""
    return (r is not None and plan_slots[slot].kind == "punct" and slot < len(plan_slots) - 1
            and needs_resampling(logw, r))


def systematic(logw: torch.Tensor, u: float) -> torch.Tensor:
    """(B,) long: the draft each position copies, by systematic resampling with the one uniform `u`."""
    k = logw.shape[0]
    w = torch.softmax(logw.double().cpu(), 0)
    points = (u + torch.arange(k, dtype=torch.float64)) / k
    return torch.searchsorted(w.cumsum(0), points).clamp(max=k - 1)
