"""Which characters the 格律 plan allows where a finished poem is changed: the decoder's own rules, replayed.

A poem is legal when the decoder could have written it: at every slot it samples, the character is in
that step's mask (tone of the still-possible templates, a rhyme class shared with the earlier rhymes,
no character used twice), and the constraint state never fails. `replay` walks whole poems through
the engine's mask and update (core.engine: the same rules as the reference path and the C kernel,
pinned equal by tests), one candidate poem per row, so the allowed set at a position — given every
other character of the poem, before and after it — is "the candidates whose row stays legal". Fixed
characters (acrostic heads, keywords, the first line) and punctuation are forced steps, never edited;
a 叠句 repeats its source character, so editing the source edits the copy.
"""

from __future__ import annotations

import torch

from core.engine import COPIED, SAMPLED, Engine, EngineVocab, Job, PlanTensors
from core.plan import Plan


class RuleReplay(Engine):
    """The engine's mask and update over a job's constraint state, without a model or cache rows."""

    def __init__(self, ev: EngineVocab):  # noqa: D107 - no model: only the rules
        self.ev = ev
        self.free, self.jobs = [], []


def editable_slots(pt: PlanTensors) -> list[int]:
    """Slots the model chose (not punctuation, not a user-fixed character, not a 叠句 copy)."""
    return [i for i, f in enumerate(pt.forced_list) if f == SAMPLED]


def replay(rules: RuleReplay, plan: Plan, pt: PlanTensors, poems: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whether each poem (B, S) of token ids, one per slot, keeps every rule of the plan."""
    B = poems.shape[0]
    job = Job(plan, pt, [], B, 1.0, 1.0, 0)
    rules.init_job(job)
    ok = torch.ones(B, dtype=torch.bool)
    ar = torch.arange(B)
    for s, f in enumerate(pt.forced_list):
        job.slot = s
        if plan.slots[s].kind == "punct":
            job.out[:, s] = f
            continue
        if f == COPIED:
            tok = job.out[:, pt.copy_of[s]].clone()
            ok &= poems[:, s] == tok
        elif f >= 0:
            tok = torch.full((B,), f, dtype=torch.long)
            ok &= poems[:, s] == tok
        else:
            tok = poems[:, s]
            was_used = job.used[ar, tok].clone()  # a repeat is never allowed (the decoder's dead-end escape aside)
            ok &= rules._mask(job)[ar, tok] & ~was_used
        rules._update(job, tok)
        job.out[:, s] = tok
    return ok & ~job.failed


def allowed_at(rules: RuleReplay, plan: Plan, pt: PlanTensors, ids: list[int], slot: int,
               candidates: torch.Tensor | None = None) -> torch.Tensor:
    """The candidate token ids (default: every content character) that may replace the character at
    `slot` while the rest of the poem stays as it is. The current character is among them when the
    poem is legal."""
    if pt.forced_list[slot] != SAMPLED:
        return torch.zeros(0, dtype=torch.long)
    if candidates is None:
        candidates = rules.ev.content.nonzero().flatten()
    if len(candidates) == 0:
        return candidates
    rows = torch.tensor(ids, dtype=torch.long).repeat(len(candidates), 1)
    rows[:, slot] = candidates
    return candidates[replay(rules, plan, pt, rows)]
