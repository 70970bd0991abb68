"""Choose and mend: the critic reads whole poems, picks among the decoder's candidates and repairs the
characters it doubts most, inside the 格律 plan.

Mending, one round: the critic reads the poem once and names the `weakest` of the characters the
model chose (lowest probability with the whole poem visible); each is masked and re-predicted by its
masked LM, restricted
to what the plan allows there (core.infill: tone, rhyme class, fixed characters, no repeats, given
the whole rest of the poem); each position's best legal replacement makes a variant; the variant the
critic scores highest is kept only if it beats the poem; a replacement must also be one the masked
LM prefers to the character it replaces. At most `rounds` rounds.

With the generator's likelihood (`lm`, the poet's own model reading the poem left to right under the
request's prompt), a variant is also kept only where that likelihood does not fall by more than
`max_lm_drop`: readers' scores follow the generator's likelihood and not the critic's (docs/critic.md,
"Which signals agree with readers"), and an unguarded mend changed every poem it read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from core.critic.critic import Critic
from core.engine import PlanTensors
from core.generate import VocabIndex
from core.infill import RuleReplay, allowed_at, editable_slots, replay
from core.plan import Plan

# Below this gain in critic score a change is noise, not a mend.
MIN_GAIN = 1e-3


@dataclass(frozen=True)
class MendConfig:
    rounds: int = 2
    weakest: int = 3  # positions re-predicted per round
    proposals: int = 24  # top masked-LM characters checked against the plan at each position
    # The masked LM must prefer the replacement to the character it replaces by this many nats: the
    # critic's score alone would trade a fitting character for one it merely likes in aggregate.
    min_lm_gain: float = 0.5
    # With the generator's likelihood given, a variant may lower its mean ln P per character by at most this.
    max_lm_drop: float = 0.0


# Poems (one token per slot) → (B,) the generator's mean ln P per character, higher is better.
GeneratorScore = Callable[[list[list[int]]], torch.Tensor]


@dataclass(frozen=True)
class Edit:
    slot: int  # index in the plan's slots (= position in the poem's text without newlines)
    old: str
    new: str


@dataclass
class Mended:
    ids: list[int]
    score: float
    edits: list[Edit] = field(default_factory=list)


class CriticVocabMap:
    """Generator token id → critic token id, by character (−1: the critic does not know it)."""

    def __init__(self, vi: VocabIndex, critic: Critic):
        self.gen_to_critic = torch.tensor([critic.vocab.tok_to_id.get(t, -1) if t else -1 for t in vi.id_to_tok])
        self.known = self.gen_to_critic >= 0

    def on_generator_vocab(self, lp: torch.Tensor) -> torch.Tensor:
        """(P, Vc) critic log-probabilities → (P, Vg) over the generator's vocabulary (−inf where unknown)."""
        out = torch.full((lp.shape[0], len(self.gen_to_critic)), -torch.inf)
        out[:, self.known] = lp[:, self.gen_to_critic[self.known]]
        return out


def render_body(vi: VocabIndex, ids: list[int]) -> str:
    return "".join(vi.id_to_tok[t] for t in ids)


def mend(critic: Critic, rules: RuleReplay, vmap: CriticVocabMap, plan: Plan, pt: PlanTensors, ids: list[int],
         form: str, score: float, cfg: MendConfig = MendConfig(), only: set[int] | None = None,
         lm: GeneratorScore | None = None) -> Mended:
    """The poem `ids` (one token per slot, legal under the plan) with its doubted characters mended;
    `score` is its critic score. `only`: restrict edits to these slots (a revision mends what it rewrote).
    `lm`: the generator's likelihood, which a kept variant may not lower (`MendConfig.max_lm_drop`)."""
    vi = rules.ev.vi
    slots = [s for s in editable_slots(pt) if only is None or s in only]
    cur = Mended(list(ids), score)
    if not slots or not bool(replay(rules, plan, pt, torch.tensor([ids]))[0]):
        return cur  # nothing to edit, or a poem the decoder wrote by its dead-end escape: leave it
    for _ in range(cfg.rounds):
        text = render_body(vi, cur.ids)
        # A glance at the whole poem names the suspects; only they are re-read masked (a few rows, not all).
        suspects = [slots[k] for k in critic.glance(text, form, slots).argsort(descending=True)[: cfg.weakest].tolist()]
        lp = vmap.on_generator_vocab(critic.masked_logprobs(text, form, suspects))  # (k, Vg)
        variants: list[tuple[list[int], Edit]] = []
        for k, s in enumerate(suspects):
            row = lp[k].masked_fill(~rules.ev.content, -torch.inf)
            here = float(row[cur.ids[s]])
            row[cur.ids[s]] = -torch.inf
            row[row < here + cfg.min_lm_gain] = -torch.inf
            top = row.topk(cfg.proposals)
            cands = top.indices[top.values > -torch.inf]
            ok = allowed_at(rules, plan, pt, cur.ids, s, cands)
            if len(ok):
                best = int(ok[row[ok].argmax()])
                new = list(cur.ids)
                new[s] = best
                for c, src in enumerate(pt.copy_of):  # a 叠句 copy follows its source
                    if src == s:
                        new[c] = best
                variants.append((new, Edit(s, vi.id_to_tok[cur.ids[s]], vi.id_to_tok[best])))
        if not variants:
            break
        scores = critic.score([render_body(vi, v) for v, _ in variants], [form] * len(variants))
        if lm is not None:  # a variant the generator finds less likely is no mend, whatever the critic says
            g = lm([cur.ids] + [v for v, _ in variants])
            scores = scores.masked_fill(g[1:] < g[0] - cfg.max_lm_drop, -torch.inf)
        b = int(scores.argmax())
        if float(scores[b]) <= cur.score + MIN_GAIN:
            break
        cur = Mended(variants[b][0], float(scores[b]), [*cur.edits, variants[b][1]])
    return cur
