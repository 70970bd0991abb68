"""Simplified ↔ traditional script (OpenCC s2t / t2s), each converter loaded once, lazily, thread-safe.

The one place the bot, the app, cards and request normalisation convert script.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_converters: dict[str, Callable[[str], str]] = {}
_lock = threading.Lock()


def _convert(kind: str) -> Callable[[str], str]:
    conv = _converters.get(kind)
    if conv is None:
        with _lock:
            conv = _converters.get(kind)
            if conv is None:
                from opencc import OpenCC

                conv = _converters[kind] = OpenCC(kind).convert
    return conv


def to_traditional(text: str) -> str:
    """Simplified → traditional (OpenCC s2t)."""
    if not text or text.isascii():
        return text
    return _convert("s2t")(text)


def to_simplified(text: str) -> str:
    """Traditional → simplified (OpenCC t2s)."""
    if not text or text.isascii():
        return text
    return _convert("t2s")(text)
