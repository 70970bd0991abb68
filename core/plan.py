"""Turn a request into a decoding plan: the slots of the poem and the constraints on each.

A plan is a sequence of slots (characters and punctuation). Every row of a batch follows the same
slots; what differs per row is which tonal templates and which rhyme groups are still possible, so
that the model, not a coin, decides 平起/仄起, 首句入韵 and the rhyme group (see core.generate).

Every rule reads a 多音字 by its common readings only (core.gelv.usage): a tone or rhyme group that
real poets rarely give a character at that kind of position does not count.

近体: the four standard templates (core.gelv.patterns). Free slots follow the *strict* marks (which
also rule out 孤平 and 三平尾); user-fixed chars (acrostic, first line, keywords) need only satisfy
the relaxed rule (2nd/4th/6th char and line ends), which is what the guarantee covers.
词: the chosen 词牌 variant's clauses, with the corpus-majority tone marks and its rhyme positions.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from core.gelv import cipai_patterns, jinti_templates
from core.gelv.patterns import relaxed_positions
from core.gelv.table import tone_classes
from core.gelv.usage import common_cilin_bu, common_ping_groups, common_tone_classes, tone_usage
from core.requests import LINES
from core.types import PoemRequest, RequestError

BOTH = frozenset({"平", "仄"})


@dataclass
class Slot:
    """One position of the poem. For char slots, marks[t] is the tone required under template t
    ("平", "仄" or "中"), rhyme[t] whether that template rhymes here."""

    kind: str  # "char" | "punct"
    text: str = ""  # the punctuation, for punct slots
    line: int = 0  # index of the 句 (clause)
    pos: int = 0  # position in the 句
    fixed: str = ""  # a user-given char (acrostic, first line, keyword)
    marks: tuple[str, ...] = ()
    rhyme: tuple[bool, ...] = ()
    copy_of: int = -1  # 叠句: the index of the slot whose char this one repeats (each candidate its own)


@dataclass
class Plan:
    form: str
    cipai: str
    slots: list[Slot]
    n_templates: int
    template_names: tuple[str, ...]
    rhyme_tone: str  # "平" for 近体 and 平韵 词; "仄" / "mixed" for other 词
    # Initial template candidates (those consistent with the fixed chars).
    templates: frozenset[int] = field(default_factory=frozenset)
    # For 近体: candidate 平水韵 groups; for 词: candidate 词林正韵 部 (as strings).
    groups: frozenset[str] = field(default_factory=frozenset)
    clause_lengths: tuple[int, ...] = ()
    line_breaks: tuple[int, ...] = ()  # slot indices after which the printed poem breaks a line

    @property
    def n_chars(self) -> int:
        return sum(1 for s in self.slots if s.kind == "char")


def rhyme_keys(ch: str, plan_form: str, tone: str | None = None) -> frozenset[str]:
    """The rhyme classes a char belongs to through its common readings (core.gelv.usage): 平水韵 平
    groups (近体) or 词林正韵 部 (词). For 词, `tone` ("平" / "仄") keeps only the 部 of the char's
    readings in that tone (None or "中": all)."""
    if plan_form == "词":
        return frozenset(str(b) for b in common_cilin_bu(ch, tone))
    return common_ping_groups(ch)


def rhyme_tone_of(marks) -> str | None:
    """The tone a rhyme is read in, from the marks of the templates that rhyme at a slot: "平" or "仄"
    when they agree, else None (either)."""
    ms = set(marks)
    return next(iter(ms)) if len(ms) == 1 and ms <= {"平", "仄"} else None


def _tone_ok(ch: str, mark: str) -> bool:
    return mark == "中" or mark in common_tone_classes(ch)


def _jinti_slots(form: str) -> tuple[list[Slot], list, tuple[int, ...]]:
    chars, n_lines = LINES[form]
    temps = jinti_templates(chars, n_lines)
    relaxed = set(relaxed_positions(chars))
    slots: list[Slot] = []
    breaks = []
    for i in range(n_lines):
        for j in range(chars):
            marks = tuple(t.lines[i][j] for t in temps)
            full = tuple(t.full[i][j] for t in temps)
            # Strict marks for free slots; relaxed ones are kept for fixed chars in `relaxed_marks`.
            slots.append(Slot("char", line=i, pos=j, marks=marks,
                              rhyme=tuple(j == chars - 1 and (i % 2 == 1 or (i == 0 and t.first_line_rhymes)) for t in temps)))
            slots[-1].relaxed = tuple(f if j in relaxed else "中" for f in full)  # type: ignore[attr-defined]
        slots.append(Slot("punct", text="，" if i % 2 == 0 else "。", line=i))
        if i % 2 == 1:
            breaks.append(len(slots) - 1)
    return slots, temps, tuple(breaks)


def _ci_slots(cipai: str, rng: random.Random, first_line: str,
              lengths: tuple[int, ...] | None = None) -> tuple[list[Slot], object, tuple[int, ...]]:
    pats = cipai_patterns(cipai)
    if lengths is not None:  # a finished poem (a revision): the variant it follows
        pats = [p for p in pats if p.lengths == lengths]
        if not pats:
            raise RequestError(f"this poem does not follow a known pattern of {cipai}")
    if first_line:
        fitting = [p for p in pats if p.clauses[0].length == len(first_line)]
        if not fitting:
            raise RequestError(f"{cipai} starts with a clause of {pats[0].clauses[0].length} characters; "
                               f"「{first_line}」 has {len(first_line)}")
        pats = fitting
    # The common variants, weighted by how many poems of 全宋词 follow them.
    top = pats[:3]
    pat = rng.choices(top, weights=[p.count for p in top])[0]
    slots: list[Slot] = []
    breaks = []
    for i, c in enumerate(pat.clauses):
        tones = c.tones or "中" * c.length
        for j in range(c.length):
            is_rhyme = c.rhyme and j == c.length - 1
            mark = tones[j] if j < len(tones) else "中"
            if is_rhyme and pat.rhyme_tone in ("平", "仄"):
                mark = pat.rhyme_tone
            s = Slot("char", line=i, pos=j, marks=(mark,), rhyme=(is_rhyme,))
            s.relaxed = (mark if is_rhyme else "中",)  # type: ignore[attr-defined]
            slots.append(s)
        slots.append(Slot("punct", text=c.punct if c.punct in "，。？！；、" else "，", line=i))
        if c.punct in "。？！；":
            breaks.append(len(slots) - 1)
    # 叠句: clause i repeats the end of clause i-1. The copy carries its own tone and rhyme, so the
    # repeating slots are free of marks and not rhyme positions of their own.
    char_idx = {i: [k for k, s in enumerate(slots) if s.kind == "char" and s.line == i] for i in range(len(pat.clauses))}
    for i in pat.repeats:  # type: ignore[attr-defined]
        src, dst = char_idx[i - 1], char_idx[i]
        for k, d in enumerate(dst):
            sl = slots[d]
            sl.own = (sl.marks, sl.rhyme, sl.relaxed)  # type: ignore[attr-defined]  # if the 叠句 is dropped
            sl.copy_of = src[len(src) - len(dst) + k]
            sl.marks, sl.rhyme = ("中",), (False,)
            sl.relaxed = ("中",)  # type: ignore[attr-defined]
    if not breaks or breaks[-1] != len(slots) - 1:
        slots[-1].text = "。"
        breaks.append(len(slots) - 1)
    return slots, pat, tuple(breaks)


def _consistent(slots: list[Slot], templates: frozenset[int], form: str) -> tuple[frozenset[int], frozenset[str] | None]:
    """Templates and rhyme classes still possible given the fixed chars (None: any class)."""
    alive = set(templates)
    for s in slots:
        if s.kind == "char" and s.fixed:
            alive = {t for t in alive if _tone_ok(s.fixed, s.relaxed[t])}  # type: ignore[attr-defined]
    groups: frozenset[str] | None = None
    for t in sorted(alive):
        g: frozenset[str] | None = None
        ok = True
        for s in slots:
            if s.kind == "char" and s.fixed and s.rhyme[t]:
                k = rhyme_keys(s.fixed, form, s.relaxed[t])  # type: ignore[attr-defined]
                g = k if g is None else g & k
                if not g:
                    ok = False
                    break
        if not ok:
            alive.discard(t)
        elif g is not None:
            groups = g if groups is None else groups | g
    return frozenset(alive), groups


def fix_all_but(plan: Plan, chars: list[str], free: set[int]) -> Plan:
    """The plan with every character slot outside `free` fixed to the poem's character there (`chars`,
    one per slot): the plan of a revision. Raises RequestError if the kept characters break the
    pattern (a poem that does not keep the 格律 of its form under common readings)."""
    slots = []
    for i, s in enumerate(plan.slots):
        s = dataclasses.replace(s)
        s.relaxed = plan.slots[i].relaxed if s.kind == "char" else ()  # type: ignore[attr-defined]
        if s.kind == "char" and i not in free:
            if s.copy_of >= 0:  # a kept 叠句 copy is a kept character like any other
                s.copy_of = -1
            s.fixed = chars[i]
        slots.append(s)
    alive, groups = _consistent(slots, frozenset(range(plan.n_templates)), plan.form)
    if not alive:
        raise RequestError(f"this poem does not keep the tonal pattern and rhyme of a {plan.form or plan.cipai} "
                           f"under common readings{_rare_note(slots)}, so it cannot be revised in place")
    return dataclasses.replace(plan, slots=slots, templates=alive, groups=groups if groups is not None else frozenset())


def _rare_note(slots: list[Slot]) -> str:
    """Fixed characters whose other tone is a rare reading (so a reader would not hear it), for messages."""
    notes = []
    for ch in dict.fromkeys(s.fixed for s in slots if s.kind == "char" and s.fixed):
        for tone in tone_classes(ch) - common_tone_classes(ch):
            u = tone_usage(ch, tone)
            if u is not None:
                notes.append(f"「{ch}」 read {tone} is a rare reading ({u.uses:,} of {u.of:,} uses by real poets)")
    return ("; " + ", ".join(notes)) if notes else ""


def _drop_overridden_repeats(slots: list[Slot]) -> None:
    """A user's char (acrostic head, first line) inside a 叠句 wins: that clause is written freely."""
    for line in {s.line for s in slots if s.copy_of >= 0 and s.fixed}:
        for s in slots:
            if s.line == line and s.copy_of >= 0:
                s.copy_of = -1
                s.marks, s.rhyme, s.relaxed = s.own  # type: ignore[attr-defined]


def build_plan(req: PoemRequest, rng: random.Random, clause_lengths: tuple[int, ...] | None = None) -> Plan:
    """The slots for a normalised request, with acrostic, first line and keywords fixed in place.
    `clause_lengths`: for a 词, take the 词牌 variant with exactly these clauses (a finished poem's)."""
    if req.form == "词":
        slots, pat, breaks = _ci_slots(req.cipai, rng, req.first_line, clause_lengths)
        n_t, names, rhyme_tone = 1, (pat.name,), pat.rhyme_tone  # type: ignore[attr-defined]
    else:
        slots, temps, breaks = _jinti_slots(req.form)
        n_t, names, rhyme_tone = len(temps), tuple(t.name for t in temps), "平"
    lines = sorted({s.line for s in slots if s.kind == "char"})
    line_slots = {i: [s for s in slots if s.kind == "char" and s.line == i] for i in lines}
    if len(req.acrostic) > len(lines):
        raise RequestError(f"an acrostic of {len(req.acrostic)} chars is longer than the {len(lines)} clauses of this form")
    for i, ch in enumerate(req.acrostic):
        line_slots[i][0].fixed = ch
    for j, ch in enumerate(req.first_line):
        if len(req.first_line) != len(line_slots[0]):
            raise RequestError(f"the first line must have {len(line_slots[0])} characters")
        line_slots[0][j].fixed = ch
    _drop_overridden_repeats(slots)
    all_t = frozenset(range(n_t))
    alive, groups = _consistent(slots, all_t, req.form)
    if not alive:
        what = "first line" if req.first_line else "acrostic"
        raise RequestError(f"the {what} breaks the tonal pattern of every {req.form} template "
                           f"(2nd/4th/6th chars and the rhyme){_rare_note(slots)}; try other characters")
    # Keywords: place each where it keeps some template possible; random (seeded) among the fits.
    for kw in req.keywords:
        if any(kw in "".join(s.fixed for s in line_slots[i]) for i in lines):
            continue  # already there (e.g. inside the first line)
        options = []
        for i in lines:
            ls = line_slots[i]
            for start in range(0, len(ls) - len(kw) + 1):
                span = ls[start : start + len(kw)]
                if any(s.fixed and s.fixed != c for s, c in zip(span, kw, strict=True)):
                    continue
                if any(s.copy_of >= 0 for s in span):
                    continue  # a 叠句 repeats the clause before: a keyword goes there, not here
                for s, c in zip(span, kw, strict=True):
                    s.fixed, s._prev = c, s.fixed  # type: ignore[attr-defined]
                a, _ = _consistent(slots, alive, req.form)
                # Keep line ends free when possible: the rhyme is best left to the model.
                if a:
                    options.append((i, start, a, start + len(kw) == len(ls)))
                for s in span:
                    s.fixed = s._prev  # type: ignore[attr-defined]
        if not options:
            raise RequestError(f"the keyword 「{kw}」 cannot be placed without breaking the tonal pattern or rhyme")
        inner = [o for o in options if not o[3]] or options
        i, start, alive, _ = rng.choice(inner)
        for s, c in zip(line_slots[i][start : start + len(kw)], kw, strict=True):
            s.fixed = c
    alive, groups = _consistent(slots, alive, req.form)
    return Plan(
        form=req.form, cipai=req.cipai, slots=slots, n_templates=n_t, template_names=names, rhyme_tone=rhyme_tone,
        templates=alive, groups=groups if groups is not None else frozenset(),
        clause_lengths=tuple(len(line_slots[i]) for i in lines), line_breaks=breaks,
    )
