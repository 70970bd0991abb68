"""Validation and normalisation of a PoemRequest: every bad request fails here with a clear message."""

from __future__ import annotations

import dataclasses
import re
import unicodedata

from core.forms import parse_form
from core.script import to_simplified
from core.types import MAX_CANDIDATES, MAX_KEYWORDS, MAX_TITLE_CHARS, PoemRequest, RequestError
from core.variants import normalise

WRITABLE_FORMS = ("五绝", "七绝", "五律", "七律", "词")
LINES = {"五绝": (5, 4), "七绝": (7, 4), "五律": (5, 8), "七律": (7, 8)}
_PUNCT = re.compile(r"[\s，。？！；：、,.?!;:\"'“”‘’《》「」]+")


def clean_text(s: str) -> str:
    """NFKC, OpenCC t2s, then one form per character (core.variants: 疎 → 疏), as the training text."""
    s = unicodedata.normalize("NFKC", s or "").strip()
    if s.isascii():
        return s
    return normalise(to_simplified(s))


def _chars_only(s: str, what: str) -> str:
    s = _PUNCT.sub("", clean_text(s))
    bad = [c for c in s if not ("\u3400" <= c <= "\u9fff" or "\U00020000" <= c <= "\U0002fa1f")]
    if bad:
        raise RequestError(f"{what} may contain Chinese characters only (got {''.join(dict.fromkeys(bad))!r})")
    return s


def normalize_request(req: PoemRequest, vocab: set[str] | None = None) -> PoemRequest:
    """A validated, simplified copy of `req`. `vocab` (the model's characters) enables the vocabulary check."""
    form = parse_form(req.form)
    if form == "排律":
        raise RequestError("Shiren writes 五绝, 七绝, 五律, 七律 and 词; 排律 has no fixed length to write to")
    cipai = ""
    if form == "词":
        if not (req.cipai or "").strip():
            raise RequestError("a 词 needs a 词牌 (cipai), e.g. 浣溪沙, 水调歌头, 鹧鸪天")
        from core.gelv import cipai_patterns

        cipai = clean_text(req.cipai)
        cipai = cipai_patterns(cipai)[0].name  # raises a RequestError with suggestions when unknown
    elif (req.cipai or "").strip():
        raise RequestError(f"a 词牌 only applies to 词, not to {form}")
    title = clean_text(req.title or "")
    if len(title) > MAX_TITLE_CHARS:
        raise RequestError(f"title is too long ({len(title)} chars); keep it under {MAX_TITLE_CHARS}")
    if title and not title.isascii():
        # Punctuation and marks in a title (、 · ○ 《》) carry nothing the model can use: dropped.
        title = "".join(c for c in title if "\u3400" <= c <= "\u9fff" or "\U00020000" <= c <= "\U0002fa1f")
    keywords = tuple(dict.fromkeys(k for k in (_chars_only(k, "a keyword") for k in req.keywords) if k))
    if len(keywords) > MAX_KEYWORDS:
        raise RequestError(f"at most {MAX_KEYWORDS} keywords, got {len(keywords)}")
    acrostic = _chars_only(req.acrostic or "", "the acrostic")
    first_line = _chars_only(req.first_line or "", "the first line")
    if form in LINES:
        chars, n_lines = LINES[form]
        # An acrostic gives the head of each 句 (line of 5 or 7 chars).
        if len(acrostic) > n_lines:
            raise RequestError(f"an acrostic of {len(acrostic)} chars is longer than the {n_lines} lines of a {form}")
        if first_line and len(first_line) != chars:
            raise RequestError(f"the first line of a {form} has {chars} characters; 「{first_line}」 has {len(first_line)}")
        if any(len(k) > chars for k in keywords):
            raise RequestError(f"a keyword longer than a {chars}-character line cannot fit")
        if sum(len(k) for k in keywords) + len(acrostic) > chars * n_lines // 2:
            raise RequestError("too many keyword characters for one poem")
    if acrostic and first_line and acrostic[0] != first_line[0]:
        raise RequestError(f"the acrostic starts with 「{acrostic[0]}」 but the first line with 「{first_line[0]}」")
    if not isinstance(req.n, int) or not 1 <= req.n <= MAX_CANDIDATES:
        raise RequestError(f"n (number of poems) must be between 1 and {MAX_CANDIDATES}")
    if not 0.05 <= float(req.temperature) <= 2.0:
        raise RequestError("temperature must be between 0.05 and 2.0")
    if not 0.1 <= float(req.top_p) <= 1.0:
        raise RequestError("top_p must be between 0.1 and 1.0")
    if req.seed is not None and not (isinstance(req.seed, int) and 0 <= req.seed < 2**63):
        raise RequestError("seed must be a non-negative integer")
    if vocab is not None:
        for what, s in (("keyword", "".join(keywords)), ("acrostic", acrostic), ("first line", first_line), ("title", title)):
            unknown = [c for c in s if c not in vocab]
            if unknown:
                raise RequestError(f"the {what} has characters the poet does not know: {''.join(dict.fromkeys(unknown))}")
    return dataclasses.replace(
        req, form=form, cipai=cipai, title=title, keywords=keywords, acrostic=acrostic, first_line=first_line,
        temperature=float(req.temperature), top_p=float(req.top_p),
    )
