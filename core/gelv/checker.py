"""格律 analysis of a poem: 近体诗 (五绝 七绝 五律 七律 排律) and 词 (against a 词牌 pattern).

Conventions: a character with several readings (多音字) satisfies a position when ANY reading does;
a character missing from the table satisfies everything (and is reported). Each poem is also judged
under common readings only (core.gelv.usage), as a reader hears it: where it passes only through a
reading real poets rarely use there, `rare_readings` names the character, the reading and how often
real poets use it so — a warning, not a failure. Variant forms (core.variants) are read as their
standard forms; the analysis shows the text as written.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.forms import FORM_SPECS, parse_form
from core.gelv.cipai import CipaiPattern, cipai_patterns, guess_cipai
from core.gelv.patterns import Template, jinti_templates, relaxed_positions
from core.gelv.table import CILIN_BU, cilin_bu, groups, ping_groups, readings, tone_classes
from core.gelv.usage import (
    common_cilin_bu,
    common_ping_groups,
    common_tone_classes,
    group_usage,
    reading_label,
    tone_usage,
)
from core.types import RequestError
from core.variants import is_variant, normalise, standard_form

MAX_INPUT_CHARS = 2000
MAX_LINES = 200

_SEP = "，。？！；、：,.?!;:\n\r\t \u3000"
_CLAUSE_END = {"，": "，", ",": "，", "、": "，", "：": "，", ":": "，", "。": "。", ".": "。", "？": "。",
               "?": "。", "！": "。", "!": "。", "；": "；", ";": "；", "\n": "。", "\r": "。"}
_IGNORED = set("「」『』“”‘’\"'《》〈〉()（）[]【】—–-…·・~～*＊　 \t")
_SPLIT_RE = re.compile(r"([^，。？！；、：,.?!;:\n\r]+)([，。？！；、：,.?!;:\n\r]*)")


def _is_han(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF
            or 0x20000 <= o <= 0x3134F or o == 0x3007)


@dataclass(frozen=True)
class Lexicon:
    """How the checker reads a character: by every reading (the verdict) or by common readings only."""

    name: str
    tone_classes: Callable[[str], frozenset[str]]
    ping_groups: Callable[[str], frozenset[str]]
    cilin_bu: Callable[..., frozenset[int]]


ANY_READING = Lexicon("any", tone_classes, ping_groups, cilin_bu)
COMMON_READING = Lexicon("common", common_tone_classes, common_ping_groups, common_cilin_bu)


@dataclass(frozen=True)
class RareReading:
    """A position the poem satisfies only through a reading real poets rarely use there."""

    line: int  # 0-based
    pos: int
    char: str  # its standard form (the analysis reads variants so)
    kind: str  # "tone" | "rhyme"
    reading: str  # e.g. "仄（去声二十七沁）", "四支"
    uses: int
    of: int

    @property
    def share(self) -> float:
        return self.uses / self.of if self.of else 0.0

    def message(self) -> str:
        where = "平仄位置" if self.kind == "tone" else "韵脚"
        what = f"读{self.reading}" if self.kind == "tone" else f"押{self.reading}韵"
        return (f"罕见读音：第{self.line + 1}句「{self.char}」{what}——唐宋近体{where}上此字 {self.of:,} 次中"
                f"仅 {self.uses:,} 次如此（{self.share:.1%}）")

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "pos": self.pos, "char": self.char, "kind": self.kind, "reading": self.reading,
                "uses": self.uses, "of": self.of, "share": round(self.share, 4)}


@dataclass(slots=True)
class CharNote:
    char: str
    tones: frozenset[str]  # subset of {平, 仄}; empty when unknown
    expected: str = ""  # template mark: 平 / 仄 / 中 ("" when not checked)
    is_rhyme_pos: bool = False
    rhyme_group: str = ""
    violations: list[str] = field(default_factory=list)

    @property
    def tone_mark(self) -> str:
        t = self.tones
        if not t:
            return "？"
        if len(t) == 2:
            return "◎"  # 多音字, either tone
        return next(iter(t))

    def to_dict(self) -> dict[str, Any]:
        return {
            "char": self.char, "tone": self.tone_mark, "tones": sorted(self.tones), "expected": self.expected,
            "is_rhyme_pos": self.is_rhyme_pos, "rhyme_group": self.rhyme_group, "violations": list(self.violations),
        }


@dataclass(slots=True)
class LineAnalysis:
    text: str
    chars: list[CharNote]
    punct: str = ""
    pattern: str = ""  # the expected marks (strict) for the line
    relaxed_ok: bool = True
    strict_ok: bool = True
    violations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "punct": self.punct, "pattern": self.pattern, "relaxed_ok": self.relaxed_ok,
            "strict_ok": self.strict_ok, "violations": list(self.violations), "chars": [c.to_dict() for c in self.chars],
        }


@dataclass
class Analysis:
    text: str
    form: str
    is_jinti: bool = False
    format_ok: bool = False
    lines: list[LineAnalysis] = field(default_factory=list)
    template: str = ""
    first_line_rhymes: bool = False
    rhyme_ok: bool = False
    rhyme_group: str = ""
    tone_strict_ok: bool = False
    tone_relaxed_ok: bool = False
    relaxed_lines_ok: int = 0
    nian_dui_ok: bool = False
    gu_ping: list[int] = field(default_factory=list)  # 0-based line indices
    san_ping_wei: list[int] = field(default_factory=list)
    repeated_chars: list[str] = field(default_factory=list)
    unknown_chars: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    verdict: str = ""
    cipai: str = ""
    cipai_pattern: CipaiPattern | None = None
    repeated_rhymes: list[str] = field(default_factory=list)  # 重韵 (variants counted as one character)
    variant_chars: list[str] = field(default_factory=list)  # as written (疎), read as the standard form (疏)
    # The same poem judged under common readings only (a reader's ear); rare readings it relies on.
    common_rhyme_ok: bool = False
    common_tone_relaxed_ok: bool = False
    common_tone_strict_ok: bool = False
    common_verdict: str = ""
    rare_readings: list[RareReading] = field(default_factory=list)

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    def scores(self) -> dict[str, Any]:
        n = len(self.lines) or 1
        return {
            "format": self.format_ok,
            "jinti": self.is_jinti,
            "rhyme": self.rhyme_ok,
            "tone_strict": self.tone_strict_ok,
            "tone_relaxed": self.tone_relaxed_ok,
            "relaxed_line_rate": self.relaxed_lines_ok / n,
            "nian_dui": self.nian_dui_ok,
            "gu_ping": len(self.gu_ping),
            "san_ping_wei": len(self.san_ping_wei),
            "repeated_chars": len(self.repeated_chars),
            "rhyme_common": self.common_rhyme_ok,
            "tone_relaxed_common": self.common_tone_relaxed_ok,
            "tone_strict_common": self.common_tone_strict_ok,
            "rare_readings": len(self.rare_readings),
            "variant_chars": len(self.variant_chars),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "form": self.form, "is_jinti": self.is_jinti, "format_ok": self.format_ok,
            "cipai": self.cipai, "cipai_pattern": self.cipai_pattern.to_dict() if self.cipai_pattern else None,
            "template": self.template, "first_line_rhymes": self.first_line_rhymes,
            "rhyme_ok": self.rhyme_ok, "rhyme_group": self.rhyme_group,
            "tone_strict_ok": self.tone_strict_ok, "tone_relaxed_ok": self.tone_relaxed_ok,
            "relaxed_lines_ok": self.relaxed_lines_ok, "nian_dui_ok": self.nian_dui_ok,
            "gu_ping": list(self.gu_ping), "san_ping_wei": list(self.san_ping_wei),
            "repeated_chars": list(self.repeated_chars), "unknown_chars": list(self.unknown_chars),
            "findings": list(self.findings), "verdict": self.verdict, "scores": self.scores(),
            "repeated_rhymes": list(self.repeated_rhymes), "variant_chars": list(self.variant_chars),
            "common_readings": {"rhyme_ok": self.common_rhyme_ok, "tone_relaxed_ok": self.common_tone_relaxed_ok,
                                "tone_strict_ok": self.common_tone_strict_ok, "verdict": self.common_verdict},
            "rare_readings": [r.to_dict() for r in self.rare_readings],
            "lines": [ln.to_dict() for ln in self.lines],
        }


# --------------------------------------------------------------------------- input

def split_lines(text: str) -> list[tuple[str, str]]:
    """(clause, punctuation) pairs; raises RequestError on garbage."""
    if text is None or not isinstance(text, str):
        raise RequestError("no text given: paste a poem (lines separated by newlines or ，。)")
    if len(text) > MAX_INPUT_CHARS:
        raise RequestError(f"text too long ({len(text)} chars): the checker takes one poem, at most "
                           f"{MAX_INPUT_CHARS} characters")
    s = unicodedata.normalize("NFC", text).strip()
    if not s:
        raise RequestError("empty text: paste a poem (lines separated by newlines or ，。)")
    bad: list[str] = []
    out: list[tuple[str, str]] = []
    clean = []
    for ch in s:
        if ch in _IGNORED:
            continue
        if "\uf900" <= ch <= "\ufaff":
            ch = unicodedata.normalize("NFKC", ch)
        if ch in _CLAUSE_END or _is_han(ch):
            clean.append(ch)
        elif ch in _SEP:
            clean.append("\n")
        else:
            o = ord(ch)
            if 0xFF01 <= o <= 0xFF5E:  # other full-width ASCII
                ch2 = chr(o - 0xFEE0)
                if ch2 in _CLAUSE_END:
                    clean.append(ch2)
                    continue
            if ch not in bad:
                bad.append(ch)
    if bad:
        shown = " ".join(repr(c) for c in bad[:8])
        raise RequestError(f"not a Chinese poem: it contains non-Chinese characters ({shown}); "
                           "paste the poem in Chinese characters, lines separated by newlines or ，。")
    for body, punct in _SPLIT_RE.findall("".join(clean)):
        if body:
            p = next((_CLAUSE_END[c] for c in punct if c in _CLAUSE_END and c not in "\n\r"), "")
            if not p and punct:
                p = "。"
            out.append((body, p or "。"))
    if not out:
        raise RequestError("no Chinese characters found: paste a poem (lines separated by newlines or ，。)")
    if len(out) > MAX_LINES:
        raise RequestError(f"too many lines ({len(out)}): the checker takes one poem (at most {MAX_LINES} lines)")
    return out


# --------------------------------------------------------------------------- 近体

def _notes(line: str, lex: Lexicon) -> list[CharNote]:
    return [CharNote(c, lex.tone_classes(c)) for c in line]


def _repeated(lines: list[str]) -> list[str]:
    text = "".join(lines)
    cnt = Counter(text)
    out = []
    for ch, n in cnt.items():
        if n < 2:
            continue
        # 叠字 (萧萧, 滚滚) inside one line do not count
        pos_total = 0
        for ln in lines:
            k = ln.count(ch)
            if k == 0:
                continue
            if k == 2 and (ch + ch) in ln:
                continue
            pos_total += k
        if pos_total >= 2:
            out.append(ch)
    return out


def _match(tones: frozenset[str], mark: str) -> bool:
    return not tones or mark == "中" or mark in tones


def _pick_rhyme_group(ends: list[str], first: str, lex: Lexicon) -> tuple[str, int]:
    score: Counter = Counter()
    for c in ends:
        for g in lex.ping_groups(c):
            score[g] += 2
    for g in lex.ping_groups(first):
        score[g] += 1
    if not score:
        return "", 0
    g, s = max(score.items(), key=lambda kv: (kv[1], -_GROUP_ORDER[kv[0]]))
    return g, s // 2


_GROUP_ORDER: dict[str, int] = {}
_ZE = frozenset({"仄"})


def _neighbours(gs: frozenset[str], g: str) -> bool:
    """Whether a group of `gs` is `g` or a neighbour of it (shares a 词林正韵 部)."""
    return any(CILIN_BU[x] & CILIN_BU[g] for x in gs)


def _analyze_jinti(an: Analysis, lines: list[str], puncts: list[str], chars: int, lex: Lexicon) -> None:
    if not _GROUP_ORDER:
        from core.gelv.table import PING_GROUP_NAMES

        _GROUP_ORDER.update({g: i for i, g in enumerate(PING_GROUP_NAMES)})
    n = len(lines)
    notes = [_notes(ln, lex) for ln in lines]
    an.lines = [LineAnalysis(ln, nt, p) for ln, nt, p in zip(lines, notes, puncts, strict=True)]
    findings = an.findings

    # ---- rhyme (平声, even lines; 首句 may rhyme)
    even_ends = [lines[i][-1] for i in range(1, n, 2)]
    ze_only = sum(1 for c in even_ends if lex.tone_classes(c) == {"仄"})
    if ze_only * 2 > len(even_ends):
        an.is_jinti = False
        an.form = "古绝" if n == 4 else "古体"
        common = None
        for c in even_ends:
            gs = {g for g in groups(c)}
            common = gs if common is None else (common & gs)
        g = sorted(common)[0] if common else ""
        for i in range(1, n, 2):
            cn = notes[i][-1]
            cn.is_rhyme_pos = True
            cn.rhyme_group = g
        an.rhyme_group = g
        an.rhyme_ok = bool(g)
        findings.append(f"押仄声韵{('（' + g + '）') if g else ''}，不是近体诗（{an.form}）")
        an.verdict = f"非近体：{an.form}（仄韵）"
        an.repeated_chars = _repeated(lines)
        return
    an.is_jinti = True
    an.format_ok = True
    g, hits = _pick_rhyme_group(even_ends, lines[0][-1], lex)
    an.rhyme_group = g
    rhyme_ok = True
    for i in range(1, n, 2):
        c = lines[i][-1]
        cn = notes[i][-1]
        cn.is_rhyme_pos = True
        pg = lex.ping_groups(c)
        if not readings(c):
            cn.rhyme_group = "?"
            continue
        if g and g in pg:
            cn.rhyme_group = g
            if len(pg) > 1:
                others = "、".join(sorted(pg - {g}))
                findings.append(f"第{i + 1}句韵脚「{c}」为多音字（亦属{others}），按{g}韵计")
            continue
        rhyme_ok = False
        if pg:
            cn.rhyme_group = "、".join(sorted(pg))
            cn.violations.append("出韵")
            an.lines[i].violations.append(f"出韵：「{c}」属{cn.rhyme_group}，不在{g}韵")
        else:
            cn.rhyme_group = "、".join(sorted(groups(c)))
            cn.violations.append("韵脚仄声")
            an.lines[i].violations.append(f"韵脚「{c}」是仄声字")
    an.rhyme_ok = rhyme_ok
    c0 = lines[0][-1]
    t0 = lex.tone_classes(c0)
    if g and g in lex.ping_groups(c0):
        first_rhymes = True
        notes[0][-1].is_rhyme_pos = True
        notes[0][-1].rhyme_group = g
    elif "平" in t0 and "仄" not in t0 and g and _neighbours(lex.ping_groups(c0), g):
        # 借邻韵: a first line may rhyme in a neighbouring group (one 词林正韵 部 with the poem's);
        # a 平 end in an unrelated group is a first line that does not rhyme, and its 平 a tone fault.
        first_rhymes = True
        notes[0][-1].is_rhyme_pos = True
        notes[0][-1].rhyme_group = "、".join(sorted(lex.ping_groups(c0)))
        findings.append(f"首句入韵「{c0}」属{notes[0][-1].rhyme_group}，不在{g}韵（借邻韵，可）")
    else:
        first_rhymes = False
    an.first_line_rhymes = first_rhymes

    # ---- template: best of the four with the right 首句 choice
    cands = [t for t in jinti_templates(chars, n) if t.first_line_rhymes == first_rhymes or not t0]
    relaxed_pos = relaxed_positions(chars)
    best: tuple[int, int, Template] | None = None
    for t in cands:
        rm = sm = 0
        for li in range(n):
            full, strict, nt = t.full[li], t.lines[li], notes[li]
            for p in range(chars):
                tones = nt[p].tones
                if not tones:
                    continue
                if p in relaxed_pos:
                    if full[p] not in tones:
                        rm += 1
                elif strict[p] != "中" and strict[p] not in tones:
                    sm += 1
        if best is None or (rm, sm) < (best[0], best[1]):
            best = (rm, sm, t)
    assert best is not None
    tpl = best[2]
    an.template = tpl.name
    strict_ok = relaxed_ok = True
    relaxed_lines = 0
    for li in range(n):
        la = an.lines[li]
        la.pattern = tpl.lines[li]
        full, strict, nt = tpl.full[li], tpl.lines[li], notes[li]
        for p in range(chars):
            cn = nt[p]
            cn.expected = strict[p] if p not in relaxed_pos else full[p]
            tones = cn.tones
            if not tones:
                continue
            if p in relaxed_pos:
                if full[p] not in tones:
                    cn.violations.append(f"应{full[p]}")
                    la.relaxed_ok = la.strict_ok = False
            elif strict[p] != "中" and strict[p] not in tones:
                cn.violations.append(f"应{strict[p]}(严)")
                la.strict_ok = False
        if la.relaxed_ok:
            relaxed_lines += 1
        else:
            relaxed_ok = False
            bad = [f"第{p + 1}字" for p in range(chars) if any(v.startswith("应") and "严" not in v
                                                             for v in nt[p].violations)]
            la.violations.append("平仄不合（" + "、".join(bad) + "）")
        if not la.strict_ok:
            strict_ok = False
    an.tone_strict_ok = strict_ok
    an.tone_relaxed_ok = relaxed_ok
    an.relaxed_lines_ok = relaxed_lines

    # ---- 孤平 (B-type lines: only one 平 besides the rhyme in the five-char core) and 三平尾
    for li in range(n):
        nt = notes[li]
        core = nt[chars - 5:]
        # 孤平: a 平-ending line whose five-char core reads 仄平仄仄平 (the only 平 besides the rhyme is isolated)
        if (core[0].tones == _ZE and "平" in core[1].tones and core[2].tones == _ZE and core[3].tones == _ZE
                and "平" in core[4].tones):
            an.gu_ping.append(li)
            an.lines[li].violations.append("犯孤平")
            core[1].violations.append("孤平")
        tail = nt[-3:]
        if all(cn.tones == {"平"} for cn in tail):
            an.san_ping_wei.append(li)
            an.lines[li].violations.append("三平尾")
            for cn in tail:
                cn.violations.append("三平尾")

    # ---- 粘 / 对 by the 2nd character
    nd_ok = True
    second = [notes[i][1].tones for i in range(n)]
    for i in range(1, n):
        a, b = second[i - 1], second[i]
        if len(a) != 1 or len(b) != 1:
            continue  # unknown or 多音: lenient
        if i % 2 == 1 and a == b:
            nd_ok = False
            an.lines[i].violations.append("失对")
            notes[i][1].violations.append("失对")
        elif i % 2 == 0 and a != b:
            nd_ok = False
            an.lines[i].violations.append("失粘")
            notes[i][1].violations.append("失粘")
    an.nian_dui_ok = nd_ok
    an.repeated_chars = _repeated(lines)
    rhymes = [standard_form(lines[i][-1]) for i in range(n) if notes[i][-1].is_rhyme_pos]
    an.repeated_rhymes = sorted({c for c in rhymes if rhymes.count(c) > 1})
    for c in an.repeated_rhymes:
        an.findings.append(f"重韵：韵脚「{c}」用了不止一次")

    # ---- findings and verdict
    for li, la in enumerate(an.lines):
        for v in la.violations:
            findings.append(f"第{li + 1}句：{v}")
    if an.repeated_chars:
        findings.append("重字：" + "、".join(an.repeated_chars))
    problems = []
    if not rhyme_ok:
        problems.append("出韵")
    if an.repeated_rhymes:
        problems.append("重韵")
    if not nd_ok:
        problems.append("失粘/失对")
    if not relaxed_ok:
        problems.append(f"{n - relaxed_lines}句平仄不合")
    if an.gu_ping:
        problems.append("孤平")
    if an.san_ping_wei:
        problems.append("三平尾")
    head = f"{an.form}，{tpl.name}，押{g or '?'}韵"
    if not problems:
        level = "合律（严格）" if strict_ok else "合律（宽：一三五不论）"
        an.verdict = f"{level}：{head}"
    else:
        an.verdict = f"不合律（{'、'.join(problems)}）：{head}"


# --------------------------------------------------------------------------- 词

def _edit_distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (0 if x == y else 1)))
        prev = cur
    return prev[-1]


def _analyze_ci(an: Analysis, clauses: list[tuple[str, str]], pats: list[CipaiPattern], auto: bool,
                 lex: Lexicon) -> None:
    an.form = "词"
    an.is_jinti = False
    lengths = tuple(len(b) for b, _ in clauses)
    pat = next((p for p in pats if p.lengths == lengths), None)
    exact = pat is not None
    if pat is None:
        pat = min(pats, key=lambda p: (_edit_distance(p.lengths, lengths), -p.count))
    an.cipai = pat.name
    an.cipai_pattern = pat
    an.format_ok = exact
    findings = an.findings
    if auto:
        findings.append(f"按句式识别为《{pat.name}》")
    an.lines = [LineAnalysis(b, _notes(b, lex), p) for b, p in clauses]
    if not exact:
        want = "、".join(str(x) for x in pat.lengths)
        got = "、".join(str(x) for x in lengths)
        findings.append(f"句式与《{pat.name}》各体不合：最接近的一体（{pat.count}首）为 {want} 字，实为 {got} 字")
    # per-char tones where the clause lengths agree
    relaxed_lines = 0
    tones_ok = True
    rhyme_chars: list[tuple[int, CharNote]] = []
    for i, la in enumerate(an.lines):
        cl = pat.clauses[i] if exact or (i < len(pat.clauses) and pat.clauses[i].length == len(la.text)) else None
        if cl is None:
            la.relaxed_ok = la.strict_ok = False
            continue
        la.pattern = cl.tones
        for p, cn in enumerate(la.chars):
            mark = cl.tones[p] if p < len(cl.tones) else "中"
            cn.expected = mark
            if not _match(cn.tones, mark):
                cn.violations.append(f"应{mark}")
                la.relaxed_ok = la.strict_ok = False
        if cl.rhyme:
            cn = la.chars[-1]
            cn.is_rhyme_pos = True
            rhyme_chars.append((i, cn))
        if la.relaxed_ok:
            relaxed_lines += 1
        else:
            tones_ok = False
            bad = [f"第{p + 1}字应{cn.expected}" for p, cn in enumerate(la.chars) if cn.violations]
            la.violations.append("平仄：" + "、".join(bad) if bad else "句式不合")
    # rhyme: each rhyme char must share a 词林正韵 部 with a neighbouring rhyme char (换韵 allowed)
    rhyme_ok = bool(rhyme_chars)
    # A rhyme rhymes by the reading of its position's tone: a 多音字's 仄 reading may sit in another 部
    # than its 平 one. (No reading of that tone is a tone fault, reported above; then all readings.)
    bus = [lex.cilin_bu(cn.char, cn.expected) or lex.cilin_bu(cn.char) for _, cn in rhyme_chars]
    main: Counter = Counter()
    for b in bus:
        main.update(b)
    for k, (i, cn) in enumerate(rhyme_chars):
        b = bus[k]
        if not readings(cn.char):
            continue
        partners = [bus[j] for j in (k - 1, k + 1) if 0 <= j < len(bus)]
        shared = [b & pb for pb in partners if b & pb]
        if shared:
            bu = min(shared[0], key=lambda x: -main[x])
            cn.rhyme_group = f"第{_CN_NUM[bu]}部"
        else:
            rhyme_ok = False
            cn.rhyme_group = "、".join(f"第{_CN_NUM[x]}部" for x in sorted(b))
            cn.violations.append("不押韵")
            an.lines[i].violations.append(f"韵脚「{cn.char}」与前后韵脚不押韵")
        if pat.rhyme_tone in ("平", "仄") and cn.tones and pat.rhyme_tone not in cn.tones:
            cn.violations.append(f"韵脚应{pat.rhyme_tone}")
            an.lines[i].violations.append(f"韵脚应{pat.rhyme_tone}声")
            rhyme_ok = False
    if main:
        an.rhyme_group = f"第{_CN_NUM[main.most_common(1)[0][0]]}部"
    an.rhyme_ok = rhyme_ok
    an.tone_relaxed_ok = an.tone_strict_ok = tones_ok and exact
    an.relaxed_lines_ok = relaxed_lines
    an.nian_dui_ok = True
    an.repeated_chars = _repeated([la.text for la in an.lines])
    for li, la in enumerate(an.lines):
        for v in la.violations:
            findings.append(f"第{li + 1}句：{v}")
    problems = []
    if not exact:
        problems.append("句式")
    if not rhyme_ok:
        problems.append("用韵")
    if not tones_ok:
        problems.append(f"{len(an.lines) - relaxed_lines}句平仄")
    head = f"词《{pat.name}》（{pat.count}/{pat.total}首同体），用{an.rhyme_group or '?'}韵（词林正韵）"
    an.verdict = f"合谱：{head}" if not problems else f"不合谱（{'、'.join(problems)}）：{head}"


_CN_NUM = {i: s for i, s in enumerate(
    "零 一 二 三 四 五 六 七 八 九 十 十一 十二 十三 十四 十五 十六 十七 十八 十九".split())}


# --------------------------------------------------------------------------- entry point

def analyze(text: str, form: str | None = None, cipai: str | None = None) -> Analysis:
    """Analyse a poem. `form` (any spelling parse_form accepts) and `cipai` are optional.

    The verdict reads every reading of a 多音字; the `common_*` fields judge the poem again by common
    readings only, and `rare_readings` names what the difference rests on.
    Raises RequestError with a clear message on garbage input or unknown form / 词牌.
    """
    written = split_lines(text)
    clauses = [(normalise(b), p) for b, p in written]  # variants read as their standard forms
    an = _analyze(clauses, form, cipai, ANY_READING)
    common = _analyze(clauses, form, cipai, COMMON_READING)
    an.common_rhyme_ok, an.common_verdict = common.rhyme_ok, common.verdict
    an.common_tone_relaxed_ok, an.common_tone_strict_ok = common.tone_relaxed_ok, common.tone_strict_ok
    an.rare_readings = _rare_readings(an, common)
    an.findings.extend(r.message() for r in an.rare_readings)
    _restore_written(an, written)
    return an


def _rare_readings(an: Analysis, common: Analysis) -> list[RareReading]:
    """Where the poem passes by every reading but not by common ones, the rare readings it relies on:
    a tone at a position that fails by common readings, and every rhyme (the first line's too) in a
    group the character rarely rhymes in, when the rhyme or the first line fails by common readings."""
    out: list[RareReading] = []
    if len(common.lines) != len(an.lines):
        return out
    rhyme_differs = (an.rhyme_ok and not common.rhyme_ok) or an.first_line_rhymes != common.first_line_rhymes
    for li, (la, lc) in enumerate(zip(an.lines, common.lines, strict=True)):
        for pos, (ca, cc) in enumerate(zip(la.chars, lc.chars, strict=True)):
            if ca.violations:
                continue
            ch, mark, g = cc.char, cc.expected, ca.rhyme_group
            if (any(v.startswith("应") and not v.endswith("(严)") for v in cc.violations) and mark in ("平", "仄")
                    and mark in tone_classes(ch)):
                u = tone_usage(ch, mark)
                if u is not None and u.rare:
                    out.append(RareReading(li, pos, ch, "tone", f"{mark}声（{reading_label(ch, mark)}）", u.uses, u.of))
                    continue
            if (rhyme_differs and ca.is_rhyme_pos and an.is_jinti and g in ping_groups(ch)
                    and g not in common_ping_groups(ch)):
                u = group_usage(ch, g)
                if u is not None and u.rare:
                    out.append(RareReading(li, pos, ch, "rhyme", g, u.uses, u.of))
    return out


def _restore_written(an: Analysis, written: list[tuple[str, str]]) -> None:
    """Show the poem as the user wrote it (the analysis read variants as their standard forms)."""
    an.text = "\n".join(b for b, _ in written)
    for la, (b, _) in zip(an.lines, written, strict=False):
        if la.text == b:
            continue
        la.text = b
        for cn, ch in zip(la.chars, b, strict=False):
            if cn.char != ch:
                cn.char = ch
                if is_variant(ch):  # traditional script is not a variant
                    an.variant_chars.append(ch)
    an.variant_chars = list(dict.fromkeys(an.variant_chars))
    if an.variant_chars:
        an.findings.append("异体字：" + "、".join(f"{c}（{standard_form(c)}）" for c in an.variant_chars))


def _analyze(clauses: list[tuple[str, str]], form: str | None, cipai: str | None, lex: Lexicon) -> Analysis:
    lines = [b for b, _ in clauses]
    puncts = [p for _, p in clauses]
    norm_text = "\n".join(lines)
    want = parse_form(form) if form else None
    if cipai:
        pats = cipai_patterns(cipai)
        if want and want != "词":
            raise RequestError(f"--cipai is for 词, but the form given is {want}")
        an = Analysis(norm_text, "词")
        _analyze_ci(an, clauses, pats, auto=False, lex=lex)
        return an
    if len(lines) < 2:
        raise RequestError(f"only one line ({len(lines[0])} chars): paste the whole poem, lines separated by "
                           "newlines or ，。")
    lengths = {len(x) for x in lines}
    n = len(lines)
    uniform = len(lengths) == 1
    chars = len(lines[0])
    if want == "词":
        names = guess_cipai(tuple(len(x) for x in lines))
        if not names:
            raise RequestError("词 needs a 词牌 to be checked (e.g. --cipai 浣溪沙); this text matches none "
                               "of the common 词牌 structures")
        an = Analysis(norm_text, "词")
        _analyze_ci(an, clauses, cipai_patterns(names[0]), auto=True, lex=lex)
        return an
    if want:
        spec = FORM_SPECS[want]
        ok = uniform and (chars == spec.chars_per_line if spec.chars_per_line else chars in (5, 7)) and (
            n == spec.n_lines if spec.n_lines else (n >= 10 and n % 2 == 0))
        if not ok:
            an = Analysis(norm_text, want)
            an.lines = [LineAnalysis(b, _notes(b, lex), p) for b, p in clauses]
            if spec.n_lines:
                need = f"{spec.n_lines}句，每句{spec.chars_per_line}字"
            else:
                need = "十句以上的偶数句，每句5或7字"
            got = "、".join(str(len(x)) for x in lines)
            an.findings.append(f"不合{want}格式：应为{need}，实为{n}句（{got}字）")
            an.verdict = f"不合律（格式）：不是{want}"
            _fill_unknown(an)
            return an
        detected = want
    elif uniform and chars in (5, 7) and n % 2 == 0 and (n in (4, 8) or n >= 10):
        detected = _jinti_name(chars, n)
    else:
        names = guess_cipai(tuple(len(x) for x in lines)) if not uniform else []
        if names:
            an = Analysis(norm_text, "词")
            _analyze_ci(an, clauses, cipai_patterns(names[0]), auto=True, lex=lex)
            _fill_unknown(an)
            return an
        an = Analysis(norm_text, "古体" if uniform else "杂言")
        an.lines = [LineAnalysis(b, _notes(b, lex), p) for b, p in clauses]
        if uniform and chars in (5, 7):
            why = f"{n}句" + ("（近体为4句、8句或10句以上偶数句）" if n not in (4, 8) else "")
        elif uniform:
            why = f"每句{chars}字（近体为5字或7字）"
        else:
            why = "句长不一（" + "、".join(str(len(x)) for x in lines) + "字）"
        an.findings.append(f"不是近体诗：{why}；如是词，请指定词牌（--cipai）")
        an.verdict = f"非近体：{an.form}"
        _fill_unknown(an)
        return an
    an = Analysis(norm_text, detected)
    _analyze_jinti(an, lines, puncts, chars, lex)
    _fill_unknown(an)
    return an


def _jinti_name(chars: int, n: int) -> str:
    if n == 4:
        return "五绝" if chars == 5 else "七绝"
    if n == 8:
        return "五律" if chars == 5 else "七律"
    return "排律"


def _fill_unknown(an: Analysis) -> None:
    unk = []
    for la in an.lines:
        for cn in la.chars:
            if not cn.tones and cn.char not in unk:
                unk.append(cn.char)
    an.unknown_chars = unk
    if unk:
        an.findings.append(f"韵表未收：{'、'.join(unk)}（按可平可仄处理）")
