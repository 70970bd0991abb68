"""Instruction data for LoRA SFT: for each poem, requests it satisfies → the poem.

Each training example is one poem with a kind of request it meets, drawn from the mix users send
(`RequestMix`): its title, a few words drawn from it as keywords, its line heads as an acrostic, its
first line, or combinations. The loss is
taken on the poem only, so the model learns to follow the header, not to write it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from core.prompt import EOS, body_text, header

SFT_FORMS = ("五绝", "七绝", "五律", "七律", "词")
_CLAUSE = re.compile(r"[，。？！；：、\n]+")


def clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE.split(text) if c]


CONDITIONS = ("title", "keywords", "acrostic", "first_line")


@dataclass(frozen=True)
class RequestMix:
    """How often each kind of request appears in the instruction data: the mix users send. A kind is
    the set of conditions given ("" = the form alone). The default puts the title alone first, as users
    do; `from_requests` measures it from stored requests instead."""

    shares: tuple[tuple[str, float], ...] = (
        ("title", 0.40), ("title+keywords", 0.15), ("keywords", 0.06), ("title+acrostic", 0.08),
        ("acrostic", 0.05), ("title+first_line", 0.08), ("first_line", 0.05),
        ("title+keywords+acrostic", 0.03), ("title+keywords+first_line", 0.02), ("", 0.08),
    )

    def __post_init__(self) -> None:
        total = sum(w for _, w in self.shares)
        if not self.shares or abs(total - 1.0) > 1e-6:
            raise ValueError(f"request mix shares must sum to 1 (got {total:.3f})")
        for kind, _ in self.shares:
            if any(c not in CONDITIONS for c in filter(None, kind.split("+"))):
                raise ValueError(f"unknown request kind {kind!r}")

    def draw(self, rng: random.Random) -> frozenset[str]:
        kinds, weights = zip(*self.shares, strict=True)
        return frozenset(filter(None, rng.choices(kinds, weights=weights)[0].split("+")))

    @classmethod
    def from_requests(cls, requests: list[dict], min_requests: int = 200) -> RequestMix | None:
        """The mix of stored requests (dicts with title / keywords / acrostic / first_line), or None when
        there are fewer than `min_requests` (too few to trust)."""
        if len(requests) < min_requests:
            return None
        counts: dict[str, int] = {}
        for r in requests:
            kind = "+".join(c for c in CONDITIONS if r.get(c))
            counts[kind] = counts.get(kind, 0) + 1
        n = sum(counts.values())
        return cls(tuple(sorted(((k, v / n) for k, v in counts.items()), key=lambda kv: -kv[1])))


DEFAULT_MIX = RequestMix()


def _keywords(cl: list[str], rng: random.Random) -> tuple[str, ...]:
    words = []
    for _ in range(rng.randint(1, 2)):
        c = rng.choice(cl)
        k = rng.choice((1, 2, 2, 2))
        if len(c) >= k:
            s = rng.randrange(0, len(c) - k + 1)
            words.append(c[s : s + k])
    return tuple(dict.fromkeys(words))


def make_example(row: dict, rng: random.Random, mix: RequestMix = DEFAULT_MIX) -> tuple[str, str] | None:
    """(prompt, completion) for one corpus row, or None when the row is not a writable form. The
    conditions are a kind drawn from `mix`; a title kind falls back to the rest for untitled poems."""
    form = row["form"]
    if form not in SFT_FORMS:
        return None
    cl = clauses(row["text"])
    if not cl:
        return None
    fields: dict = {"cipai": row["cipai"] if form == "词" else ""}
    kind = mix.draw(rng)
    title = row["title"] if row["title"] != row["cipai"] else ""
    if title and "title" in kind:
        fields["title"] = title[:30]
    if "keywords" in kind:
        fields["keywords"] = _keywords(cl, rng)
    if "acrostic" in kind:
        n = len(cl) if form != "词" else min(len(cl), rng.randint(2, 4))
        fields["acrostic"] = "".join(c[0] for c in cl[:n])
    if "first_line" in kind:
        fields["first_line"] = cl[0]
    return header(form, **fields), body_text(row["text"]) + EOS


def build_examples(rows: list[dict], seed: int = 0, cipai_whitelist: set[str] | None = None,
                   mix: RequestMix = DEFAULT_MIX) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for row in rows:
        if row["form"] == "词" and cipai_whitelist is not None and row["cipai"] not in cipai_whitelist:
            continue
        ex = make_example(row, rng, mix)
        if ex is not None:
            out.append(ex)
    rng.shuffle(out)
    return out
