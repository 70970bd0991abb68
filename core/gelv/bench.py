"""A tiny benchmark of the checker (mean seconds per 七律 check), for `shiren bench`."""

from __future__ import annotations

import time

# 杜甫《登高》 and 《蜀相》 (simplified), alternated so caches see more than one poem.
_POEMS = (
    "风急天高猿啸哀，渚清沙白鸟飞回。\n无边落木萧萧下，不尽长江滚滚来。\n"
    "万里悲秋常作客，百年多病独登台。\n艰难苦恨繁霜鬓，潦倒新停浊酒杯。",
    "丞相祠堂何处寻，锦官城外柏森森。\n映阶碧草自春色，隔叶黄鹂空好音。\n"
    "三顾频烦天下计，两朝开济老臣心。\n出师未捷身先死，长使英雄泪满襟。",
)


def bench_check(n: int = 2000) -> float:
    """Mean wall-clock seconds per 七律 `analyze` call over `n` calls (after one warm-up call)."""
    from core.gelv.checker import analyze

    for p in _POEMS:
        analyze(p)  # load the data once
    n = max(1, int(n))
    t0 = time.perf_counter()
    for i in range(n):
        analyze(_POEMS[i & 1])
    return (time.perf_counter() - t0) / n


if __name__ == "__main__":
    print(f"{bench_check() * 1e6:.1f} µs per 七律")
