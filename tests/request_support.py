"""Requests the engine tests run on every path: each form, each kind of fixed character, 词 with 叠句."""

from __future__ import annotations

from core.types import PoemRequest

BASE_REQUESTS = [
    PoemRequest(form="七绝", seed=1),
    PoemRequest(form="五律", acrostic="春夏秋冬", seed=2),
    PoemRequest(form="七律", keywords=("明月",), title="中秋", seed=3, n=2),
    PoemRequest(form="五绝", first_line="春风拂柳绿", seed=4),
    PoemRequest(form="词", cipai="浣溪沙", seed=5),
]
WITH_KEYWORD_CI = PoemRequest(form="词", cipai="菩萨蛮", keywords=("江南",), seed=6)
WITH_REPEATS = PoemRequest(form="词", cipai="如梦令", seed=7)  # 叠句: copied slots
