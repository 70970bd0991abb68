"""Simplified → traditional script (OpenCC s2t), loaded once, lazily, thread-safe."""

from __future__ import annotations

import threading
from collections.abc import Callable

_s2t: Callable[[str], str] | None = None
_lock = threading.Lock()


def to_traditional(text: str) -> str:
    global _s2t
    if not text or text.isascii():
        return text
    if _s2t is None:
        with _lock:
            if _s2t is None:
                from opencc import OpenCC

                _s2t = OpenCC("s2t").convert
    return _s2t(text)
