"""Instruction data for LoRA SFT: for each poem, requests it satisfies → the poem.

Each training example is one poem with a random subset of the conditions it meets: its title, a
few words drawn from it as keywords, its line heads as an acrostic, its first line. The loss is
taken on the poem only, so the model learns to follow the header, not to write it.
"""

from __future__ import annotations

import random
import re

from core.prompt import EOS, body_text, header

SFT_FORMS = ("五绝", "七绝", "五律", "七律", "词")
_CLAUSE = re.compile(r"[，。？！；：、\n]+")


def clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE.split(text) if c]


def make_example(row: dict, rng: random.Random) -> tuple[str, str] | None:
    """(prompt, completion) for one corpus row, or None when the row is not a writable form."""
    form = row["form"]
    if form not in SFT_FORMS:
        return None
    cl = clauses(row["text"])
    if not cl:
        return None
    fields: dict = {"cipai": row["cipai"] if form == "词" else ""}
    title = row["title"] if row["title"] != row["cipai"] else ""
    if title and rng.random() < 0.7:
        fields["title"] = title[:30]
    if rng.random() < 0.35:
        words = []
        for _ in range(rng.randint(1, 2)):
            c = rng.choice(cl)
            k = rng.choice((1, 2, 2, 2))
            if len(c) >= k:
                s = rng.randrange(0, len(c) - k + 1)
                words.append(c[s : s + k])
        fields["keywords"] = tuple(dict.fromkeys(words))
    r = rng.random()
    if r < 0.2:
        n = len(cl) if form != "词" else min(len(cl), rng.randint(2, 4))
        fields["acrostic"] = "".join(c[0] for c in cl[:n])
    elif r < 0.4:
        fields["first_line"] = cl[0]
    return header(form, **fields), body_text(row["text"]) + EOS


def build_examples(rows: list[dict], seed: int = 0, cipai_whitelist: set[str] | None = None) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for row in rows:
        if row["form"] == "词" and cipai_whitelist is not None and row["cipai"] not in cipai_whitelist:
            continue
        ex = make_example(row, rng)
        if ex is not None:
            out.append(ex)
    rng.shuffle(out)
    return out
