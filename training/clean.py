"""Text cleaning for the corpus: strip annotations, normalise punctuation, split into lines."""

from __future__ import annotations

import re

# Sentence punctuation kept in poem bodies; everything else is normalised onto these.
CLAUSE_PUNCT = "，。？！；：、"
_HALF_TO_FULL = str.maketrans({",": "，", ".": "。", "?": "？", "!": "！", ";": "；", ":": "：", "．": "。", "﹐": "，", "﹑": "、"})
# Bracketed annotations: (注), （注）, 【注】, [注], {注}, 〔注〕.
_BRACKETS = re.compile(r"[（(\[【{〔［][^）)\]】}〕］]*[）)\]】}〕］]")
# Marks for missing or illegible characters in the sources.
MISSING_MARKS = set("□■◻◼�〼○●")
_QUOTES = str.maketrans("", "", "「」『』“”‘’\"'《》〈〉 　\t\r")


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0x20000 <= o <= 0x2FA1F
        or 0xF900 <= o <= 0xFAFF
        or o == 0x3007  # 〇
    )


def clean_body(paragraphs: list[str]) -> str | None:
    """One poem's body as clean text (lines joined by newlines), or None when it must be dropped."""
    out = []
    for p in paragraphs:
        p = _BRACKETS.sub("", p).translate(_QUOTES).translate(_HALF_TO_FULL)
        p = re.sub(r"[—…]+", "", p)
        if not p:
            continue
        if any(c in MISSING_MARKS for c in p):
            return None
        if any(not (is_cjk(c) or c in CLAUSE_PUNCT) for c in p):
            return None
        # A dangling line without final punctuation gets a full stop.
        if p[-1] not in CLAUSE_PUNCT:
            p += "。"
        out.append(p)
    text = "\n".join(out)
    return text if sum(is_cjk(c) for c in text) >= 4 else None


def clean_title(title: str) -> str:
    t = _BRACKETS.sub("", title or "").translate(_QUOTES).strip()
    return re.sub(r"\s+", " ", t)


_SPLIT = re.compile(f"[{CLAUSE_PUNCT}\n]+")


def clauses(text: str) -> list[str]:
    """The clauses (句) of a body: runs of characters between punctuation."""
    return [c for c in _SPLIT.split(text) if c]


def classify(text: str, is_ci: bool) -> str:
    """Form by shape: 五绝 五律 七绝 七律 排律 古体 (杂言 counted as 古体), or 词."""
    if is_ci:
        return "词"
    cl = clauses(text)
    lens = {len(c) for c in cl}
    if len(lens) == 1 and lens <= {5, 7} and len(cl) % 2 == 0:
        n, k = len(cl), lens.pop()
        if n == 4:
            return "五绝" if k == 5 else "七绝"
        if n == 8:
            return "五律" if k == 5 else "七律"
        if n >= 10:
            return "排律"
    return "古体"
