"""One form per character: variant forms (鴈 隠 疎 凖 …) -> the standard simplified form (雁 隐 疏 准).

The map (`core/data/variants.json`: 5,904 forms, 2,917 of them traditional script rather than variants) is built by `training/build_variants.py` from
char-converter's variant table (Taiwan MOE 异体字字典 + 通用规范汉字表) and Unihan; a standard
character of 通用规范汉字表 is never rewritten. Data prep applies it to the training text (after OpenCC
t2s), so the tokenizer has one token per character; the decoder never offers a variant token; the
格律 checker reads a user's variants as their standard forms (and shows the text as written).
Loaded lazily; no OpenCC at run time.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("core").joinpath("data/variants.json").read_text(encoding="utf-8"))


def variant_map() -> dict[str, str]:
    """variant or traditional form -> standard simplified form."""
    return _data()["map"]


@lru_cache(maxsize=1)
def _traditional() -> frozenset[str]:
    return frozenset(_data()["traditional"])


@lru_cache(maxsize=1)
def _table() -> dict[int, str]:
    return str.maketrans(variant_map())


def standard_form(ch: str) -> str:
    """The standard form of one character (itself when it is standard or unknown)."""
    return variant_map().get(ch, ch)


def is_standard(ch: str) -> bool:
    """Whether `ch` is in its standard simplified form (what generated text is made of)."""
    return ch not in variant_map()


def is_variant(ch: str) -> bool:
    """A variant form (异体字: 鴈 疎), not a standard character nor a traditional one (鴻 為)."""
    return ch in variant_map() and ch not in _traditional()


def normalise(text: str) -> str:
    """`text` with every variant form replaced by its standard form (same length, char for char)."""
    return text.translate(_table())


def variants_in(text: str) -> list[str]:
    """The variant characters of `text`, in order of first appearance."""
    return list(dict.fromkeys(c for c in text if is_variant(c)))
