"""Ratings → preference data for feedback fine-tuning.

    pairs, info = build_preference_data(store.rated_poems(), poet)

- Pairs: poems for the same request (form, 词牌, title, keywords, acrostic, first line) with different
  stars give (chosen = more stars, rejected = fewer stars).
- Lone ratings (a request whose poems all got the same stars, or a single rated poem): when a poet is
  given, a few fresh poems are sampled for the same request and ranked by the 格律 engine; a liked
  poem (>= 4 stars) is paired as chosen against the weakest fresh one, a disliked poem (<= 2 stars)
  as rejected against the strongest fresh one. 3 stars is neutral and pairs with nothing.

Each pair is a dict {prompt, chosen, rejected, ...}: prompt = `poet.prompt_for(request)` (the header the
model is conditioned on), completions = the body (no newlines) + <eos> — the format of `core.prompt`.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from core.prompt import EOS, body_text, header
from core.types import PoemRequest

LIKED, DISLIKED = 4, 2  # stars >= LIKED: desirable; <= DISLIKED: undesirable (KTO-style labels)
MAX_PAIRS_PER_REQUEST = 8


def request_key(req: PoemRequest) -> tuple:
    """What makes two poems answers to "the same request" (sampling settings and n do not count)."""
    return (req.form, req.cipai, req.title, tuple(req.keywords), req.acrostic, req.first_line)


def completion(text: str) -> str:
    return body_text(text) + EOS


def default_prompt(req: PoemRequest) -> str:
    return header(req.form, title=req.title, cipai=req.cipai, keywords=req.keywords, acrostic=req.acrostic,
                  first_line=req.first_line)


def engine_score(text: str, scores: dict[str, Any] | None = None) -> float:
    """A 格律-engine quality score used to rank fresh samples: format, rhyme, strict tone, few repeats."""
    from training.metrics import repeated_char_rate

    s = scores or {}
    return (1.0 * bool(s.get("format", True)) + 1.0 * bool(s.get("rhyme", True))
            + 0.5 * bool(s.get("tone_relaxed", True)) + 0.5 * bool(s.get("tone_strict", False))
            - 2.0 * repeated_char_rate(text) - 1.0 * float(s.get("copied_lines", 0) or 0))


@dataclass(frozen=True)
class PrefPair:
    prompt: str
    chosen: str
    rejected: str
    source: str  # "rated" (two rated poems) or "fresh" (a rated poem against a fresh sample)
    request: PoemRequest
    chosen_stars: float
    rejected_stars: float

    def as_row(self) -> dict[str, str]:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


def pairs_from_ratings(rated: Iterable, prompt_for: Callable[[PoemRequest], str] = default_prompt,
                       max_per_request: int = MAX_PAIRS_PER_REQUEST, seed: int = 0) -> tuple[list[PrefPair], list]:
    """(pairs from requests with differently rated poems, the lone ratings left unpaired)."""
    rng = random.Random(seed)
    groups: dict[tuple, list] = defaultdict(list)
    for r in rated:
        groups[request_key(r.request)].append(r)
    pairs: list[PrefPair] = []
    lone: list = []
    for rows in groups.values():
        cand = [(a, b) for a in rows for b in rows
                if a.stars > b.stars and body_text(a.text) != body_text(b.text)]
        if not cand:
            lone.extend(rows)
            continue
        # The widest gaps first (clearest preferences); ties broken at random but reproducibly.
        rng.shuffle(cand)
        cand.sort(key=lambda ab: -(ab[0].stars - ab[1].stars))
        for a, b in cand[:max_per_request]:
            pairs.append(PrefPair(prompt_for(a.request), completion(a.text), completion(b.text), "rated",
                                  a.request, a.stars, b.stars))
        paired = {id(x) for ab in cand[:max_per_request] for x in ab}
        lone.extend(r for r in rows if id(r) not in paired and r.stars != 3)
    return pairs, lone


def pairs_from_fresh(lone: Iterable, poet, n_fresh: int = 4, seed: int = 0,
                     judge: Callable[[str], float] | None = None) -> list[PrefPair]:
    """For each liked/disliked lone rating, sample `n_fresh` poems for its request with `poet` and pair:
    a liked poem against the worst fresh one, a disliked one against the best, by `judge` (the critic's
    reward model) or, without one, the 格律 engine's score."""
    from core.types import ShirenError

    out: list[PrefPair] = []
    for r in lone:
        if DISLIKED < r.stars < LIKED:
            continue
        req = replace(r.request, n=n_fresh, seed=(seed * 1_000_003 + int(r.rating_id)) % (2**31))
        try:
            fresh = [p for p in poet.write(req) if body_text(p.text) != body_text(r.text)]
        except ShirenError:
            continue
        if not fresh:
            continue
        fresh.sort(key=(lambda p: judge(p.text)) if judge is not None else (lambda p: engine_score(p.text, p.scores)))
        prompt = poet.prompt_for(poet.validate(r.request))
        if r.stars >= LIKED:
            worst = fresh[0]
            out.append(PrefPair(prompt, completion(r.text), completion(worst.text), "fresh", r.request, r.stars, 3))
        else:
            best = fresh[-1]
            out.append(PrefPair(prompt, completion(best.text), completion(r.text), "fresh", r.request, 3, r.stars))
    return out


def build_preference_data(rated: list, poet=None, *, n_fresh: int = 4, seed: int = 0,
                          max_per_request: int = MAX_PAIRS_PER_REQUEST,
                          judge: Callable[[str], float] | None = None) -> tuple[list[PrefPair], dict]:
    """All preference pairs from the ratings (plus fresh-sample pairs for lone ratings when `poet` is given,
    mined with `judge`)."""
    prompt_for = poet.prompt_for if poet is not None else default_prompt
    pairs, lone = pairs_from_ratings(rated, prompt_for, max_per_request, seed)
    fresh = pairs_from_fresh(lone, poet, n_fresh, seed, judge) if poet is not None and n_fresh > 0 else []
    info = {"ratings": len(rated), "pairs_rated": len(pairs), "lone_ratings": len(lone), "pairs_fresh": len(fresh),
            "requests": len({request_key(r.request) for r in rated})}
    return pairs + fresh, info


def kto_rows(rated: Iterable, prompt_for: Callable[[PoemRequest], str] = default_prompt) -> list[dict]:
    """Unpaired KTO rows (prompt, completion, label): >= 4 stars desirable, <= 2 undesirable, 3 left out."""
    return [{"prompt": prompt_for(r.request), "completion": completion(r.text), "label": r.stars >= LIKED}
            for r in rated if r.stars >= LIKED or r.stars <= DISLIKED]


# ---- a preference proxy: predicted stars from the characters of a poem ----------------------------------

_NON_CHAR = re.compile(r"[，。？！；：、\n\s]")


class StarsProxy:
    """Ridge regression of stars on bag-of-characters, fitted on the ratings: `predict(text)` → stars.

    The promotion gate's preference metric when no better judge is given: a candidate must raise the
    mean predicted stars of its poems on the fixed evaluation requests.
    """

    def __init__(self, weights: dict[str, float], bias: float):
        self.weights, self.bias = weights, bias

    @classmethod
    def fit(cls, rated: list, l2: float = 1.0) -> StarsProxy:
        import numpy as np

        if not rated:
            return cls({}, 3.0)
        vocab = sorted({c for r in rated for c in _NON_CHAR.sub("", r.text)})
        idx = {c: i for i, c in enumerate(vocab)}
        X = np.zeros((len(rated), len(vocab)))
        for i, r in enumerate(rated):
            for c in _NON_CHAR.sub("", r.text):
                X[i, idx[c]] += 1.0
        y = np.array([float(r.stars) for r in rated])
        bias = float(y.mean())
        # Dual form: w = Xᵀ (X Xᵀ + λI)⁻¹ (y − ȳ) — one n×n solve, cheap for thousands of ratings.
        K = X @ X.T + l2 * np.eye(len(rated))
        w = X.T @ np.linalg.solve(K, y - bias)
        return cls({c: float(w[i]) for c, i in idx.items() if abs(w[i]) > 1e-9}, bias)

    def predict(self, text: str) -> float:
        v = self.bias + sum(self.weights.get(c, 0.0) for c in _NON_CHAR.sub("", text))
        return float(min(5.0, max(1.0, v))) if math.isfinite(v) else 3.0
