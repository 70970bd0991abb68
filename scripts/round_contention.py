#!/usr/bin/env python
"""Poem requests while a feedback round trains in the same process (the bot's scheduled round).

    python scripts/round_contention.py                       # the shipped model, ~5 min
    python scripts/round_contention.py --json out.json --markdown out.md

Simulated users rate poems into a fresh SQLite database (training.simulated_rater), then 七绝 n=1
requests are timed three ways: idle; during a real feedback round run as before this change (torch's
default threads, the decoder unaware of it); and during a round run as the bot runs it now (one core
left free, the round's thread counted as another process's by core.cpu_share, the GIL handed over
more often meanwhile). Pause other heavy
processes first: they would be counted too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _percentiles(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {"n": len(s), "p50_ms": round(statistics.median(s), 1),
            "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 1), "max_ms": round(s[-1], 1)}


def _time_requests(poet, n: int, seed0: int, while_alive: threading.Thread | None = None) -> list[float]:
    from core.types import PoemRequest

    out = []
    for i in range(n):
        if while_alive is not None and not while_alive.is_alive():
            break
        t = time.perf_counter()
        poet.write(PoemRequest(form="七绝", seed=seed0 + i))
        out.append(1000 * (time.perf_counter() - t))
        if while_alive is not None:
            time.sleep(0.05)  # requests arrive one after another, as from chats
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--requests", type=int, default=40, help="Timed requests per phase.")
    ap.add_argument("--steps", type=int, default=40, help="Training steps of each round.")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    a = ap.parse_args(argv)

    import torch

    from core import paths
    from core.adapters import resolve_adapter
    from core.cpu_share import background_thread, usable_cores
    from core.poet import Poet
    from db.store import Store
    from training.feedback import FeedbackConfig, run_feedback_round
    from training.simulated_rater import TRAIN_TITLES, CharSetRater, requests_for, simulate_ratings

    base_dir = Path(a.model_dir or paths.model_dir())
    adapter = resolve_adapter()
    home = Path(tempfile.mkdtemp(prefix="shiren-contention-"))
    os.environ["SHIREN_HOME"] = str(home)
    default_threads = torch.get_num_threads()
    res: dict = {"machine": {"cores": usable_cores(), "torch_threads": default_threads}}
    with Store(f"sqlite:///{home / 'shiren.db'}") as store:
        if adapter is not None:
            store.add_adapter(adapter.name, str(adapter), None, {"note": "contention start"}, status="active")
        poet = Poet.load(base_dir, adapter=adapter, critic=None)
        sim = simulate_ratings(store, poet, CharSetRater(), requests_for(TRAIN_TITLES, 24, seed=1,
                                                                          poems_per_request=4))
        print(f"rated {sim['ratings']} poems", flush=True)
        _time_requests(poet, 5, 0)  # warm
        res["idle"] = _percentiles(_time_requests(poet, a.requests, 100))
        print("idle", res["idle"], flush=True)
        phases = [("round, before (all cores, unseen)", default_threads, False),
                  ("round, now (one core left, counted, GIL handed over every 0.2 ms)",
                   max(1, usable_cores() - 1), True)]
        for name, threads, marked in phases:
            cfg = FeedbackConfig(max_steps=a.steps, threads=threads)
            box: dict = {}

            def run(cfg=cfg, marked=marked, box=box) -> None:
                t0 = time.perf_counter()
                if marked:
                    with background_thread():
                        r = run_feedback_round(store, base_dir, force=True, config=cfg, home=home)
                else:
                    r = run_feedback_round(store, base_dir, force=True, config=cfg, home=home)
                box.update(outcome=r.outcome, seconds=round(time.perf_counter() - t0, 1))

            th = threading.Thread(target=run, name="round")
            th.start()
            time.sleep(3.0)  # past the start (pairs, loading) into training
            ms = _time_requests(poet, a.requests, 1000, while_alive=th)
            th.join()
            torch.set_num_threads(default_threads)
            res[name] = {**_percentiles(ms), "round": box}
            print(name, res[name], flush=True)
        poet.close()
    idle = res["idle"]["p50_ms"]
    rows = ["| 七绝 n=1 | requests | p50 | p95 | p50 vs idle | p95 vs p50 |", "|---|---:|---:|---:|---:|---:|"]
    for k, v in res.items():
        if k == "machine":
            continue
        rows.append(f"| {k} | {v['n']} | {v['p50_ms']} ms | {v['p95_ms']} ms | {v['p50_ms'] / idle:.2f}× | "
                    f"{v['p95_ms'] / v['p50_ms']:.2f}× |")
    table = "\n".join(rows)
    print("\n" + table)
    if a.json:
        a.json.write_text(json.dumps(res, ensure_ascii=False, indent=1), "utf-8")
    if a.markdown:
        a.markdown.write_text(table + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
