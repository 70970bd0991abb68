"""A simulated rater with a clear taste, and the before/after measurement that proves the feedback loop.

The rater likes water imagery: stars grow with the number of water characters in a poem
(0 → 1★, 1 → 3★, 2 → 4★, 3+ → 5★). Poems are produced through the normal path (`poet.write` →
`store.record_poems` → `store.rate` by simulated users) into a real database; after one feedback round
the liked property is measured on held-out requests, with bootstrap confidence intervals.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.adapters import ADAPTER_WEIGHTS
from core.types import PoemRequest, ShirenError
from training.metrics import bootstrap_ci

WATER = "水江河湖海波流泉溪浪潮雨涛潭浦渚汀滩涧津渡舟池塘洲沧澜漪瀑"

TRAIN_TITLES = ("江行", "夜泊", "秋兴", "春望", "旅怀", "晚眺", "田家", "山中", "归舟", "闲居", "别意", "晴川")
HELDOUT_TITLES = ("早发", "远游", "西窗", "孤城", "林下", "新晴", "北望", "野步", "独坐", "乡梦")
FORMS = ("五绝", "七绝", "五律", "七律")


@dataclass(frozen=True)
class CharSetRater:
    """Likes poems with characters from `chars` (by default: water imagery)."""

    chars: str = WATER
    name: str = "water"

    def count(self, text: str) -> int:
        return sum(1 for c in text if c in self.chars)

    def score(self, text: str) -> float:
        """The liked property: how many liked characters the poem has."""
        return float(self.count(text))

    def stars(self, text: str) -> int:
        return {0: 1, 1: 3, 2: 4}.get(self.count(text), 5)


def requests_for(titles, n: int, seed: int, poems_per_request: int = 1, forms=FORMS) -> list[PoemRequest]:
    """`n` requests cycling over forms × titles, each with its own fixed seed."""
    combos = [(f, t) for t in titles for f in forms]
    return [PoemRequest(form=combos[i % len(combos)][0], title=combos[i % len(combos)][1], n=poems_per_request,
                        seed=seed + i) for i in range(n)]


def simulate_ratings(store, poet, rater: CharSetRater, requests: list[PoemRequest], *, n_users: int = 3,
                     adapter_version: str | None = None, progress: Callable[[int, int], None] | None = None
                     ) -> dict[str, Any]:
    """Simulated users ask for poems, store them and rate every one: the bot's and the app's path."""
    users = [store.ensure_user("cli", f"simulated-{rater.name}-{k}", f"simulated rater {k}") for k in range(n_users)]
    stars: list[int] = []
    for i, req in enumerate(requests):
        uid = users[i % n_users]
        try:
            poems = poet.write(req)
        except ShirenError:
            continue
        ids = store.record_poems(uid, poet.validate(req), poems, adapter_version=adapter_version)
        for pid, poem in zip(ids, poems, strict=True):
            s = rater.stars(poem.text)
            store.rate(uid, pid, s)
            stars.append(s)
        if progress:
            progress(i + 1, len(requests))
    return {"users": n_users, "requests": len(requests), "ratings": len(stars),
            "stars_histogram": {k: stars.count(k) for k in range(1, 6)}}


def measure(poet, requests: list[PoemRequest], rater: CharSetRater) -> list[dict[str, Any]]:
    """One poem per request (fixed seeds): the liked property and the 格律 gates, per poem."""
    from training.evaluate import score_poem

    rows = []
    for req in requests:
        norm = poet.validate(req)
        try:
            text = poet.write(norm)[0].text
        except ShirenError:
            rows.append({"ok": False})
            continue
        s = score_poem(text, norm, poet.corpus_lines)
        rows.append({"ok": True, "text": text, "liked": rater.score(text), "liked2": float(rater.count(text) >= 2),
                     "format": s["format"], "rhyme": s["rhyme"], "tone": s["tone"], "repeat": s["repeat"]})
    return rows


def compare(before: list[dict], after: list[dict], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Before/after summary on the same requests and seeds; the liked property's difference is paired."""
    both = [(b, a) for b, a in zip(before, after, strict=True) if b["ok"] and a["ok"]]

    def rate(rows, key):
        vals = [bool(r[key]) for r in rows if r.get("ok") and r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    out: dict[str, Any] = {"n": len(both)}
    for name, rows in (("before", before), ("after", after)):
        ok = [r for r in rows if r["ok"]]
        out[name] = {
            "liked": bootstrap_ci([r["liked"] for r in ok], n_boot, seed),
            "liked2": bootstrap_ci([r["liked2"] for r in ok], n_boot, seed),
            "format": rate(rows, "format"), "rhyme": rate(rows, "rhyme"), "tone": rate(rows, "tone"),
            "repeat": statistics.fmean([r["repeat"] for r in ok]) if ok else None,
            "failed": sum(1 for r in rows if not r["ok"]),
        }
    out["diff"] = bootstrap_ci([a["liked"] - b["liked"] for b, a in both], n_boot, seed)
    return out


def format_table(cmp: dict[str, Any], liked_name: str = "water chars / poem") -> str:
    def ci(t):
        return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"

    def pct(v):
        return "—" if v is None else f"{100 * v:.1f}%"

    b, a = cmp["before"], cmp["after"]
    rows = [
        ("metric", "before", "after"),
        (f"{liked_name} (95% CI)", ci(b["liked"]), ci(a["liked"])),
        ("poems with ≥2 (95% CI)", ci(b["liked2"]), ci(a["liked2"])),
        ("format", pct(b["format"]), pct(a["format"])),
        ("rhyme", pct(b["rhyme"]), pct(a["rhyme"])),
        ("tone (relaxed)", pct(b["tone"]), pct(a["tone"])),
        ("repeated-char rate", f"{b['repeat']:.4f}", f"{a['repeat']:.4f}"),
        ("failed requests", str(b["failed"]), str(a["failed"])),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(max(len(r[1]), len(r[2])) for r in rows)
    lines = [f"| {r[0]:<{w0}} | {r[1]:>{w1}} | {r[2]:>{w1}} |" for r in rows]
    lines.insert(1, f"|{'-' * (w0 + 2)}|{'-' * (w1 + 1)}:|{'-' * (w1 + 1)}:|")
    d = cmp["diff"]
    lines.append(f"\npaired difference after − before ({liked_name}), n={cmp['n']}: {ci(d)}")
    return "\n".join(lines)


# ---- the whole experiment (scripts/simulate_feedback.py and the tests) -----------------------------------

def make_tiny_setup(root, seed: int = 0, n_embd: int = 32, n_layer: int = 1, n_chars: int = 3000,
                    cluster: str = "", cluster_scale: float = 1.0):
    """A tiny random base model saved as a model dir, plus a starting LoRA adapter (identity at init):
    (base_dir, adapter_dir). Lets the whole loop run in seconds with the real loading code.

    `cluster`: characters given a shared embedding component, as a pretrained model gives related words
    (water imagery) neighbouring embeddings. A random model has no such structure, so what DPO learns
    about a liked character cannot carry over to the others, nor to new contexts."""
    from pathlib import Path

    from core.testing import tiny_model_and_tokenizer
    from training.sft import SFTConfig, lora_model

    root = Path(root)
    base_dir, adapter_dir = root / "tiny-base", root / "tiny-adapters" / "tiny-sft"
    if not (base_dir / "config.json").exists():
        model, tok = tiny_model_and_tokenizer(n_chars=n_chars, seed=seed, n_embd=n_embd, n_layer=n_layer)
        if cluster:
            import torch

            emb = model.get_input_embeddings().weight
            g = torch.Generator().manual_seed(seed + 1)
            v = torch.randn(emb.shape[1], generator=g)
            v = v / v.norm() * emb.norm(dim=1).mean() * cluster_scale
            ids = [i for i in tok.convert_tokens_to_ids(list(dict.fromkeys(cluster))) if i != tok.unk_token_id]
            with torch.no_grad():
                emb[ids] += v
        model.save_pretrained(str(base_dir))
        tok.save_pretrained(str(base_dir))
    if not (adapter_dir / ADAPTER_WEIGHTS).exists():
        from core.adapters import base_ref
        from core.atomic import atomic_dir
        from training.feedback import load_base

        base, _ = load_base(base_dir)
        peft_model = lora_model(base, SFTConfig(rank=8, alpha=16, dropout=0.0, bf16=False))
        with atomic_dir(adapter_dir) as tmp:
            peft_model.peft_config["default"].base_model_name_or_path = base_ref(base_dir)
            peft_model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
    return base_dir, adapter_dir


def run_simulation(store, base_dir, adapter, *, rater: CharSetRater | None = None, train_requests: int = 48,
                   poems_per_request: int = 4, heldout_requests: int = 40, gate_requests: int = 24,
                   config=None, seed: int = 0, log: Callable[[str], None] = print, home=None) -> dict[str, Any]:
    """Rate → one feedback round → before/after on held-out requests. `adapter`: the starting adapter
    folder (registered and promoted as the active one when not yet in the database), or None."""
    import time
    from pathlib import Path

    from core.poet import Poet
    from training.feedback import run_feedback_round

    rater = rater or CharSetRater()
    if adapter is not None:
        adapter = Path(adapter)
        if not any(a.name == adapter.name for a in store.list_adapters()):
            store.add_adapter(adapter.name, str(adapter), None, {"note": "simulation start"}, status="active")
    t0 = time.time()
    before_poet = Poet.load(base_dir, adapter=adapter)
    train = requests_for(TRAIN_TITLES, train_requests, seed=seed * 100_000 + 1, poems_per_request=poems_per_request)
    held = requests_for(HELDOUT_TITLES, heldout_requests, seed=seed * 100_000 + 50_000)
    gate_titles = tuple(t for t in ("春晓", "秋夜", "登楼", "山居", "送友", "寒食", "暮归", "客思"))
    gates = requests_for(gate_titles, gate_requests, seed=seed * 100_000 + 80_000)
    sim = simulate_ratings(store, before_poet, rater, train,
                           adapter_version=adapter.name if adapter is not None else None)
    t_rate = time.time() - t0
    log(f"rated {sim['ratings']} poems for {sim['requests']} requests in {t_rate:.1f}s; stars {sim['stars_histogram']}")
    before = measure(before_poet, held, rater)
    before_poet.close()
    t1 = time.time()
    result = run_feedback_round(store, base_dir, force=True, eval_requests=gates, preference=rater.score,
                                config=config, progress=lambda f, line: log(f"[{100 * f:5.1f}%] {line}"), home=home)
    t_round = time.time() - t1
    log(f"round: {result.outcome} — {result.message} ({t_round:.1f}s)")
    out: dict[str, Any] = {"simulation": sim, "round": result.to_dict(), "round_seconds": round(t_round, 1),
                           "rating_seconds": round(t_rate, 1)}
    if result.adapter is None:
        return out
    rec = next(a for a in store.list_adapters() if a.name == result.adapter)
    after_poet = Poet.load(base_dir, adapter=Path(rec.path))
    after = measure(after_poet, held, rater)
    after_poet.close()
    out["compare"] = compare(before, after, seed=seed)
    out["table"] = format_table(out["compare"])
    return out
