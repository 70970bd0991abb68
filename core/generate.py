"""Constrained sampling: the model proposes, the plan's masks dispose.

Every row of a batch walks the same slots (core.plan). At a character slot the logits are masked
to the characters that keep the poem legal for that row — the tone the still-possible templates
allow, a rhyme class still shared with the row's earlier rhymes, no character used twice — so
form, rhyme and tonal pattern hold by construction. Forced tokens (punctuation, user-fixed chars)
are fed to the model together in one forward call.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from core.contrast import Contrast, contrastive_logits, token_logprob
from core.fastc import c_sample, load_kernel
from core.gelv.usage import common_tone_classes
from core.plan import Plan, rhyme_keys, rhyme_tone_of
from core.smc import DEAD, Resample, legal_log_mass, resamples_here, systematic
from core.variants import is_standard

# A rhyme class needs this many characters in the vocabulary to be offered (avoids 窄韵 dead ends).
MIN_RHYME_CHARS = 12


def _is_cjk(tok: str) -> bool:
    return len(tok) == 1 and ("\u3400" <= tok <= "\u9fff" or "\U00020000" <= tok <= "\U0002fa1f")


class VocabIndex:
    """Per-token facts the masks are built from, computed once per tokenizer: the one definition of the
    rules that the reference path (below), the engine's torch rules and the C kernel (core.engine) all
    read. Tones and rhyme classes are those of common readings (core.gelv.usage); a variant form
    (core.variants) is never content, so generated text has one form per character."""

    def __init__(self, tokenizer):
        vocab = tokenizer.get_vocab()
        self.size = len(tokenizer)
        self.id_to_tok = [""] * self.size
        for tok, i in vocab.items():
            if i < self.size:
                self.id_to_tok[i] = tok
        self.tok_to_id = {t: i for i, t in enumerate(self.id_to_tok) if t}
        content = torch.zeros(self.size, dtype=torch.bool)
        ping = torch.zeros(self.size, dtype=torch.bool)
        ze = torch.zeros(self.size, dtype=torch.bool)
        keys_jinti: dict[str, list[int]] = {}
        keys_ci: dict[str, list[int]] = {}
        keys_ci_tone: dict[str, dict[str, list[int]]] = {"平": {}, "仄": {}}
        for i, tok in enumerate(self.id_to_tok):
            if not _is_cjk(tok) or not is_standard(tok):
                continue
            tc = common_tone_classes(tok)
            if not tc:
                continue  # unknown tone: never offered, so every char's tone is checkable
            content[i] = True
            ping[i] = "平" in tc
            ze[i] = "仄" in tc
            for g in rhyme_keys(tok, "近体"):
                keys_jinti.setdefault(g, []).append(i)
            by_tone = {t: rhyme_keys(tok, "词", t) for t in ("平", "仄")}
            for t, bus in by_tone.items():
                for b in bus:
                    keys_ci_tone[t].setdefault(b, []).append(i)
            for b in by_tone["平"] | by_tone["仄"]:  # every reading is 平 or 仄: together, all its 部
                keys_ci.setdefault(b, []).append(i)
        self.content, self.ping, self.ze = content, ping, ze
        self.tone_mask = {"平": content & ping, "仄": content & ze, "中": content}
        self.classes: dict[str, tuple[str, ...]] = {}
        self.class_matrix: dict[str, torch.Tensor] = {}
        # Membership by the tone of the reading: a 词 rhyme in a 仄 position rhymes by the char's 仄
        # reading. 近体 classes are 平 groups of 平 readings already: the same matrix for both tones.
        self.class_matrix_tone: dict[str, dict[str, torch.Tensor]] = {}
        for kind, keys in (("近体", keys_jinti), ("词", keys_ci)):
            names = tuple(sorted(k for k, ids in keys.items() if len(ids) >= MIN_RHYME_CHARS))

            def matrix(members: dict[str, list[int]], names=names) -> torch.Tensor:
                m = torch.zeros(len(names), self.size)
                for gi, k in enumerate(names):
                    m[gi, members.get(k, [])] = 1.0
                return m  # (G, V)

            self.classes[kind] = names
            self.class_matrix[kind] = matrix(keys)
            self.class_matrix_tone[kind] = ({t: matrix(keys_ci_tone[t]) for t in ("平", "仄")} if kind == "词"
                                            else {t: self.class_matrix[kind] for t in ("平", "仄")})
        self.vocab_chars = {t for t in self.tok_to_id if _is_cjk(t)}

    def char_id(self, ch: str) -> int:
        return self.tok_to_id[ch]


@dataclass
class RowState:
    templates: set[int]
    groups: set[str]
    used: set[int]
    logprob: float = 0.0
    n_sampled: int = 0
    failed: bool = False


def _allowed_tones(slot, templates: set[int]) -> set[str]:
    marks = {slot.marks[t] for t in templates}
    return {"平", "仄"} if "中" in marks else marks


def row_mask(vi: VocabIndex, kind: str, slot, st: RowState) -> torch.Tensor:
    """Bool (V,) mask of the characters this row may put in this slot."""
    tones = _allowed_tones(slot, st.templates)
    rhyming = {t for t in st.templates if slot.rhyme[t]}
    base = vi.content.clone()
    if st.used:
        base[list(st.used)] = False
    tone_m = torch.zeros_like(base)
    for t in tones:
        tone_m |= vi.tone_mask[t]
    if not rhyming:
        return base & tone_m
    names = vi.classes[kind]
    sel = torch.tensor([1.0 if g in st.groups else 0.0 for g in names])
    rhyme_marks = {slot.marks[t] for t in rhyming}
    rhyme_tones = {"平", "仄"} if "中" in rhyme_marks else rhyme_marks  # as the engine: 中 allows either
    rhyme_m = torch.zeros_like(base)
    for t in rhyme_tones:  # a reading of this tone, in one of the row's rhyme classes
        rhyme_m |= vi.tone_mask[t] & ((sel @ vi.class_matrix_tone[kind][t]) > 0)
    rhyme_ok = base & rhyme_m
    if rhyming == st.templates:
        return rhyme_ok
    # Mixed (首句入韵 or not): a non-rhyming char of the non-rhyming templates' tone, or a rhyme.
    other_tones = {slot.marks[t] for t in st.templates - rhyming}
    other = torch.zeros_like(base)
    for t in ({"平", "仄"} if "中" in other_tones else other_tones):
        other |= vi.tone_mask[t]
    return rhyme_ok | (base & other)


def update_row(vi: VocabIndex, kind: str, slot, st: RowState, tok_id: int) -> None:
    """Narrow this row's templates and rhyme classes after `tok_id` went into `slot`."""
    ch = vi.id_to_tok[tok_id]
    tc = common_tone_classes(ch)
    marks = slot.relaxed if slot.fixed else slot.marks
    keep = {t for t in st.templates if marks[t] == "中" or marks[t] in tc}
    rhyming = {t for t in keep if slot.rhyme[t]}
    if rhyming:
        k = rhyme_keys(ch, kind, rhyme_tone_of(marks[t] for t in rhyming)) & st.groups
        if rhyming == keep:
            if k:
                st.groups = set(k)
            else:
                st.failed = True  # only reachable with a user-fixed char; the plan rules that out
        elif k and "平" in tc:
            keep, st.groups = rhyming, set(k)
        else:
            keep -= rhyming
    if not keep:
        st.failed = True
        return
    st.templates = keep
    st.used.add(tok_id)


def sample_torch(logits: torch.Tensor, mask: torch.Tensor, temperature: float, top_p: float,
                 u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampling rule of core/kernels/decode.c (`shiren_sample`) in torch, for machines without a C
    compiler. Kept set (the nucleus): allowed tokens by descending probability (ties: lower id first)
    while the mass before them is < top_p; all allowed ones when top_p >= 1. The token is the first kept
    one, in id order, where the running kept mass exceeds u · (kept mass). Returns (tokens,
    log_softmax(logits)[tokens]) over the whole vocabulary."""
    x = (logits - logits.masked_fill(~mask, -math.inf).amax(-1, keepdim=True)) / temperature
    p = torch.exp(x.masked_fill(~mask, -math.inf)).double()  # (B, V), zero where not allowed
    if top_p < 1.0:
        sp, idx = p.sort(dim=-1, descending=True, stable=True)
        before = sp.cumsum(-1) - sp
        keep = (before < top_p * sp.sum(-1, keepdim=True)) & (sp > 0)
        p = p * torch.zeros_like(keep).scatter(-1, idx, keep)
    cum = p.cumsum(-1)  # (B, V) in id order
    over = cum > u.double()[:, None] * cum[:, -1:]
    last_kept = (p > 0).double().cumsum(-1).argmax(-1)  # where rounding leaves no token over the target
    tok = torch.where(over.any(-1), over.double().argmax(-1), last_kept)
    return tok, token_logprob(logits, tok)


def sample(logits: torch.Tensor, mask: torch.Tensor, temperature: float, top_p: float,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) token ids from (B, V) logits restricted to `mask`, with temperature and nucleus sampling, and
    their log-probabilities under the unrestricted model. One uniform per row from `gen`; the C kernel
    does the work where it is built (the fast engine and the reference path share this function).
    Logits on a GPU are sampled there by the same rule in torch (the kernel reads host memory only);
    the uniforms still come from `gen` on the CPU, so a seed draws the same numbers on every device."""
    u = torch.rand(logits.shape[0], generator=gen, dtype=torch.float64)
    lib = load_kernel() if logits.device.type == "cpu" else None
    if lib is not None:
        return c_sample(lib, logits, mask, temperature, top_p, u)
    return sample_torch(logits, mask, temperature, top_p, u.to(logits.device))


@torch.inference_mode()
def generate(model, tokenizer, vi: VocabIndex, plan: Plan, prompt: str, batch: int, temperature: float,
             top_p: float, seed: int, amateur=None, contrast: Contrast | None = None,
             resample: Resample | None = None) -> list[tuple[list[int], RowState]]:
    """Sample `batch` poems following `plan`; returns each row's char ids (one per slot) and state.
    `amateur` (a model on the same vocabulary) with `contrast`: contrastive decoding (core.contrast);
    the rows' log-probabilities stay the expert's. `resample`: the rows are resampled by weight at
    clause ends (core.smc)."""
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    kind = "词" if plan.form == "词" else "近体"
    all_groups = set(plan.groups) if plan.groups else set(vi.classes[kind])
    fixed_ids = {vi.char_id(s.fixed) for s in plan.slots if s.fixed}
    rows = [RowState(set(plan.templates), set(all_groups), set(fixed_ids)) for _ in range(batch)]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    pending = torch.tensor([prompt_ids] * batch, dtype=torch.long)  # (B, P) tokens not yet fed
    past = past_a = None
    out_ids: list[list[int]] = [[] for _ in range(batch)]
    logits = None
    logw = torch.zeros(batch, dtype=torch.float64)
    for si, slot in enumerate(plan.slots):
        if resamples_here(plan.slots, si, logw, resample):
            idx = systematic(logw, float(torch.rand(1, generator=gen, dtype=torch.float64)))
            rows = [dataclasses.replace(rows[i], templates=set(rows[i].templates), groups=set(rows[i].groups),
                                        used=set(rows[i].used)) for i in idx.tolist()]
            out_ids = [list(out_ids[i]) for i in idx.tolist()]
            pending = pending[idx]
            for cache in (past, past_a):
                if cache is not None:
                    cache.reorder_cache(idx.to(device))
            logw = torch.zeros(batch, dtype=torch.float64)
        if slot.kind == "char" and slot.copy_of >= 0 and not slot.fixed:  # 叠句: each row repeats its char
            tids = [o[slot.copy_of] for o in out_ids]
            for r, t in zip(rows, tids, strict=True):
                update_row(vi, kind, slot, r, t)
            for o, t in zip(out_ids, tids, strict=True):
                o.append(t)
            pending = torch.cat([pending, torch.tensor(tids, dtype=torch.long)[:, None]], dim=1)
            continue
        if slot.kind == "punct" or slot.fixed:
            tid = vi.char_id(slot.text if slot.kind == "punct" else slot.fixed)
            if slot.kind == "char":
                for r in rows:
                    update_row(vi, kind, slot, r, tid)
            for o in out_ids:
                o.append(tid)
            pending = torch.cat([pending, torch.full((batch, 1), tid, dtype=torch.long)], dim=1)
            continue
        # A free char: feed what is pending, then sample under this row's mask.
        out = model(input_ids=pending.to(device), cache=past, use_cache=True)
        past = out.cache
        logits = expert = out.logits[:, -1, :].float().cpu()  # (B, V)
        if amateur is not None and contrast is not None:
            out_a = amateur(input_ids=pending.to(device), cache=past_a, use_cache=True)
            past_a = out_a.cache
            logits = contrastive_logits(expert, out_a.logits[:, -1, :].float().cpu(), contrast)
        mask = torch.stack([row_mask(vi, kind, slot, r) for r in rows])  # (B, V)
        empty = ~mask.any(dim=-1)
        for b in empty.nonzero().flatten().tolist():  # dead end: allow a repeated char, then anything legal
            rows[b].used = set(fixed_ids)
            mask[b] = row_mask(vi, kind, slot, rows[b])
            if not mask[b].any():
                rows[b].failed = True
                mask[b] = vi.content
        if resample is not None:
            logw += legal_log_mass(expert, mask, temperature)
        tok, logp = sample(logits, mask, temperature, top_p, gen)  # (B,), (B,)
        if logits is not expert:
            logp = token_logprob(expert, tok)
        for b, r in enumerate(rows):
            t = int(tok[b])
            update_row(vi, kind, slot, r, t)
            if r.failed:
                logw[b] = DEAD
            r.logprob += float(logp[b])
            r.n_sampled += 1
            out_ids[b].append(t)
        pending = tok[:, None]
    return [(ids, r) for ids, r in zip(out_ids, rows, strict=True)]


def render_text(plan: Plan, vi: VocabIndex, ids: list[int]) -> str:
    """The poem text with a newline after each couplet (近体) or sentence (词)."""
    parts = []
    breaks = set(plan.line_breaks)
    for i, tid in enumerate(ids):
        parts.append(vi.id_to_tok[tid])
        if i in breaks and i != len(ids) - 1:
            parts.append("\n")
    return "".join(parts)
