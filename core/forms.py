"""Canonical form names and parsing of user-given form names (Chinese or pinyin)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from core.types import RequestError

# Canonical names. 排律 has no fixed length (an even number >= 10 lines).
CANONICAL_FORMS: tuple[str, ...] = ("五绝", "七绝", "五律", "七律", "排律", "词")


@dataclass(frozen=True)
class FormSpec:
    name: str
    chars_per_line: int  # 0 when free (排律 may be 5 or 7)
    n_lines: int  # 0 when free (排律: even, >= 10)

    @property
    def n_chars(self) -> int:
        return self.chars_per_line * self.n_lines


FORM_SPECS: dict[str, FormSpec] = {
    "五绝": FormSpec("五绝", 5, 4),
    "七绝": FormSpec("七绝", 7, 4),
    "五律": FormSpec("五律", 5, 8),
    "七律": FormSpec("七律", 7, 8),
    "排律": FormSpec("排律", 0, 0),
}

_ALIASES: dict[str, str] = {
    # Chinese, simplified and traditional
    "五绝": "五绝", "五絕": "五绝", "五言绝句": "五绝", "五言絕句": "五绝",
    "七绝": "七绝", "七絕": "七绝", "七言绝句": "七绝", "七言絕句": "七绝",
    "五律": "五律", "五言律诗": "五律", "五言律詩": "五律",
    "七律": "七律", "七言律诗": "七律", "七言律詩": "七律",
    "排律": "排律", "五排": "排律", "七排": "排律", "五言排律": "排律", "七言排律": "排律",
    "词": "词", "詞": "词", "宋词": "词", "宋詞": "词",
    # pinyin (tone-less, ü as v / u / ü), with or without spaces / hyphens
    "wujue": "五绝", "qijue": "七绝", "wulv": "五律", "wulu": "五律", "wulü": "五律",
    "qilv": "七律", "qilu": "七律", "qilü": "七律", "pailv": "排律", "pailu": "排律", "pailü": "排律",
    "ci": "词",
    "wuyanjueju": "五绝", "qiyanjueju": "七绝", "wuyanlvshi": "五律", "qiyanlvshi": "七律",
    "wuyanlushi": "五律", "qiyanlushi": "七律", "wuyanlüshi": "五律", "qiyanlüshi": "七律",
}


def _key(name: str) -> str:
    s = unicodedata.normalize("NFC", name).strip().lower()
    for ch in " -_·・'’":
        s = s.replace(ch, "")
    return s


def parse_form(name: str) -> str:
    """Canonical form name ("五绝", "七绝", "五律", "七律", "排律", "词") for a user-given name.

    Raises RequestError with the accepted names when `name` is unknown.
    """
    if not isinstance(name, str) or not name.strip():
        raise RequestError("form name is empty; use one of: " + ", ".join(CANONICAL_FORMS))
    k = _key(name)
    if k in _ALIASES:
        return _ALIASES[k]
    raise RequestError(
        f"unknown form {name.strip()!r}; use one of: 五绝 (wujue), 七绝 (qijue), 五律 (wulv), "
        "七律 (qilv), 排律 (pailv), 词 (ci) — or the full names 五言绝句, 七言律诗 …"
    )


def form_spec(name: str) -> FormSpec:
    """The FormSpec of a 近体 form (any accepted spelling); RequestError for 词 or unknown names."""
    f = parse_form(name)
    if f not in FORM_SPECS:
        raise RequestError(f"{f} has no fixed line structure; it needs a 词牌 (cipai)")
    return FORM_SPECS[f]
