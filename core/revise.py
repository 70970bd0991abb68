"""Revision on request: one line (句) or one character of a finished poem rewritten, the rest kept.

The revision's plan is the poem's own plan with every other character fixed in place
(core.plan.fix_all_but), so the decoder writes the new characters under every rule of the form —
tone, the rhyme shared with the kept rhymes, no character repeated — and the critic chooses among the
drafts and mends only what was rewritten. Characters the request fixed (acrostic heads, keywords,
the first line) stay; asking to rewrite one of them is refused with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.plan import Plan
from core.types import PoemRequest, RequestError

_PUNCT = re.compile(r"[，。？！；、：]")


@dataclass(frozen=True)
class RevisionTarget:
    """What to rewrite: `line` (1-based 句, as the line picker numbers them) or `char` (1-based position
    among the poem's characters, punctuation not counted)."""

    line: int | None = None
    char: int | None = None

    def __post_init__(self) -> None:
        if (self.line is None) == (self.char is None):
            raise RequestError("say which line (--line N) or which character (--char N) to rewrite")

    def describe(self) -> dict[str, int]:
        return {"line": self.line} if self.line is not None else {"char": self.char}


def poem_body(text: str) -> str:
    """The poem as one string of characters and punctuation (layout removed)."""
    return "".join(text.split())


def clause_lengths(body: str) -> tuple[int, ...]:
    return tuple(len(c) for c in _PUNCT.split(body) if c)


def clauses(text: str) -> list[str]:
    """The poem's 句, in order (what the line picker shows)."""
    return [c for c in _PUNCT.split(poem_body(text)) if c]


def user_fixed(req: PoemRequest, plan: Plan, body: str) -> dict[int, str]:
    """Slot → why the request fixed the character there."""
    out: dict[int, str] = {}
    for i, s in enumerate(plan.slots):
        if s.kind == "char" and s.fixed:
            out[i] = "the first line you gave" if req.first_line and s.line == 0 else "an acrostic head"
    for kw in req.keywords:
        at = body.find(kw)
        if at >= 0:
            for i in range(at, at + len(kw)):
                out.setdefault(i, f"part of the keyword 「{kw}」")
    return out


def revision_slots(req: PoemRequest, plan: Plan, body: str, target: RevisionTarget) -> set[int]:
    """The slots to rewrite, with a clear RequestError where the target cannot be rewritten."""
    chars = [i for i, s in enumerate(plan.slots) if s.kind == "char"]
    n_lines = len({plan.slots[i].line for i in chars})
    fixed = user_fixed(req, plan, body)
    if target.line is not None:
        if not 1 <= target.line <= n_lines:
            raise RequestError(f"this poem has lines 1–{n_lines}; there is no line {target.line}")
        line = [i for i in chars if plan.slots[i].line == target.line - 1]
        if plan.slots[line[0]].copy_of >= 0 and plan.slots[line[0]].copy_of not in line:
            raise RequestError(f"line {target.line} repeats the end of line {target.line - 1} (叠句); "
                               f"rewrite line {target.line - 1} and it follows")
        free = {i for i in line if i not in fixed}
        if not free:
            raise RequestError(f"line {target.line} is {next(iter(fixed[i] for i in line))}: it stays as it is")
    else:
        if not 1 <= target.char <= len(chars):
            raise RequestError(f"this poem has characters 1–{len(chars)}; there is no character {target.char}")
        slot = chars[target.char - 1]
        if slot in fixed:
            raise RequestError(f"「{body[slot]}」 is {fixed[slot]}: it stays as it is")
        if plan.slots[slot].copy_of >= 0:
            src = plan.slots[slot].copy_of
            raise RequestError(f"「{body[slot]}」 repeats character {chars.index(src) + 1} (叠句); rewrite that one")
        free = {slot}
    # A 叠句 copy of a rewritten character follows it.
    free |= {i for i in chars if plan.slots[i].copy_of in free}
    return free
