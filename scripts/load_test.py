"""Load test of the shared batcher: N concurrent requests of mixed forms, all answered, all legal.

    .venv/bin/python scripts/load_test.py [--n 200] [--model-dir DIR] [--tiny]

Prints throughput and p50/p95 latency, for the same requests served one by one and all at once
through the batcher (numbers are printed, not asserted).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.types import PoemRequest  # noqa: E402
from training.evaluate import score_poem  # noqa: E402

MIX = [
    dict(form="五绝"), dict(form="七绝", title="春夜"), dict(form="五律", acrostic="春夏秋冬"),
    dict(form="七律", keywords=("明月",)), dict(form="词", cipai="浣溪沙"), dict(form="七绝", acrostic="江山"),
    dict(form="词", cipai="鹧鸪天", title="秋思"), dict(form="五绝", first_line="春风拂柳绿"),
]


def requests(n: int) -> list[PoemRequest]:
    return [PoemRequest(seed=i, **MIX[i % len(MIX)]) for i in range(n)]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def concurrent(poet, reqs):
    lat = []

    async def one(r):
        t = time.perf_counter()
        poems = await poet.awrite(r, timeout=600)
        lat.append(time.perf_counter() - t)
        return poems

    t = time.perf_counter()
    res = await asyncio.gather(*(one(r) for r in reqs))
    return res, lat, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--tiny", action="store_true", help="Use the tiny random model (smoke test).")
    args = ap.parse_args()
    if args.tiny:
        from core.testing import tiny_poet

        poet = tiny_poet()
    else:
        from core.poet import Poet

        poet = Poet.load(args.model_dir)
    reqs = requests(args.n)
    poet.write(reqs[0])  # warm-up
    t = time.perf_counter()
    seq_lat = []
    for r in reqs:
        s = time.perf_counter()
        poet.write(r)
        seq_lat.append(time.perf_counter() - s)
    seq_total = time.perf_counter() - t
    poet.start_batcher(max_queue=max(256, len(reqs)))  # room for every request: this measures throughput
    res, lat, total = asyncio.run(concurrent(poet, reqs))
    bad = 0
    for r, poems in zip(reqs, res, strict=True):
        norm = poet.validate(r)
        s = score_poem(poems[0].text, norm, None)
        ok = s["format"] and s["rhyme"] and (s["tone"] is not False) and s["acrostic"] is not False and s["keywords"] is not False
        bad += not ok
    stats = poet._batcher.stats
    print(f"{len(reqs)} requests of {len(MIX)} kinds; answered {len(res)}; constraint failures {bad}")
    print(f"one by one : {len(reqs) / seq_total:6.1f} req/s   p50 {1000 * statistics.median(seq_lat):7.1f} ms   "
          f"p95 {1000 * pct(seq_lat, 95):7.1f} ms (each request's own time)")
    print(f"concurrent : {len(reqs) / total:6.1f} req/s   p50 {1000 * statistics.median(lat):7.1f} ms   "
          f"p95 {1000 * pct(lat, 95):7.1f} ms (from submission, queueing included)")
    print(f"batcher: {stats['steps']} decode steps, up to {stats['max_rows_in_step']} rows in one step")
    poet.close()


if __name__ == "__main__":
    main()
