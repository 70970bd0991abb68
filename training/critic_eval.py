"""Measuring the critic: the two-sample test of real test-split poems against plain sampling, plain
sampling with as many drafts as the critic gets (ranked by likelihood alone: what more drafts buy without
the critic), choose, and choose + mend (the same requests and seeds for all; classifiers trained separately from the
critic, on the test split, by cross-validation with their own seeds); the doubt head on corrupted
held-out poems; and mended examples.

    python -m training.critic_eval [--per-form 40] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from core.critic.critic import SCORES
from core.types import ShirenError

# choose+mend: the poet's acceptance rule (critic score up, generator likelihood not down);
# choose+mend-unguarded: the critic's score alone decides (the earlier rule).
CONDITIONS = ("plain", "plain-k8", "choose", "choose+mend", "choose+mend-unguarded")


def generate(poet, pairs: list, limit_s: float | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """(real, generated, mended examples) for the requests the poet serves."""
    real, gen, mended = [], [], []
    t0 = time.time()
    for req, row in pairs:
        if limit_s is not None and time.time() - t0 > limit_s:
            break
        try:
            poem = poet.write(req)[0]
        except ShirenError:
            continue
        meta = {"form": req.form, "cipai": req.cipai, "group": row["id"]}
        real.append({"text": row["text"], **meta})
        gen.append({"text": poem.text, **meta, "request": req.to_dict(), "model_version": poem.model_version,
                    **({"mended": poem.scores["mended"]} if poem.scores.get("mended") else {})})
        if poem.scores.get("mended"):
            mended.append({"request": req.to_dict(), "after": poem.text, "edits": poem.scores["mended"],
                           "critic": poem.scores.get("critic")})
    return real, gen, mended


def before_text(after: str, edits: list[dict]) -> str:
    """The draft a mended poem came from: each edit undone, by 句 and position."""
    import re

    parts = re.split(r"([，。？！；、：\n])", after)
    clauses = [i for i, p in enumerate(parts) if p and not re.fullmatch(r"[，。？！；、：\n]", p)]
    for e in reversed(edits):
        i = clauses[e["line"]]
        s = parts[i]
        parts[i] = s[: e["pos"]] + e["old"] + s[e["pos"] + 1 :]
    return "".join(parts)


def doubt_quality(critic, rows: list[dict], seed: int = 0, n: int = 300) -> dict:
    """Replace one character of each held-out real poem by another of the same tone class; how often the
    critic's top doubt is that character, and the AUC of doubt (replaced vs kept characters), for the
    masked doubt (one masked pass per character) and the one-pass glance mend uses."""
    from core.gelv.usage import common_tone_classes
    from training.metrics import roc_auc

    rng = random.Random(seed)
    pool = [c for c in critic.vocab.id_to_tok if len(c) == 1 and "\u4e00" <= c <= "\u9fff" and common_tone_classes(c)]
    by_tone: dict[frozenset, list[str]] = {}
    for c in pool:
        by_tone.setdefault(frozenset(common_tone_classes(c)), []).append(c)
    top1 = {"masked": 0, "glance": 0}
    labels, scores = [], {"masked": [], "glance": []}
    done, chance = 0, 0.0
    for r in rows:
        body = "".join(r["text"].split())
        pos = [i for i, c in enumerate(body) if c in critic.vocab.tok_to_id and common_tone_classes(c)]
        if len(pos) < 10 or len(body) > 100:
            continue
        k = rng.choice(pos)
        same = by_tone.get(frozenset(common_tone_classes(body[k])), pool)
        new = rng.choice([c for c in same if c not in body] or pool)
        text = body[:k] + new + body[k + 1 :]
        masked = critic.doubt(text, r["form"], pos)
        glance = critic.glance(text, r["form"], pos).tolist()
        for name, d in (("masked", masked), ("glance", glance)):
            top1[name] += pos[max(range(len(pos)), key=lambda i: d[i])] == k
            scores[name].extend(d)
        labels.extend(int(p == k) for p in pos)
        chance += 1 / len(pos)
        done += 1
        if done >= n:
            break
    return {"poems": done, **{f"{m}_top1": round(top1[m] / max(1, done), 4) for m in top1},
            **{f"{m}_auc": round(roc_auc(labels, scores[m]), 4) for m in scores},
            "chance_top1": round(chance / max(1, done), 4)}


def candidates_tradeoff(poet, pairs: list, ks: tuple[int, ...] = (4, 8, 16, 32)) -> list[dict]:
    """For each K: the mean critic score of the chosen poem (choose only) and the p50 latency. The score is
    the one that chooses, so it rises with K by construction; what matters is where it flattens."""
    import statistics

    rows = []
    poet.polish = False
    for k in ks:
        poet.candidates = k
        scores, ts = [], []
        for req, _ in pairs:
            t = time.perf_counter()
            try:
                p = poet.write(req)[0]
            except ShirenError:
                continue
            ts.append(time.perf_counter() - t)
            scores.append(p.scores["critic"])
        rows.append({"K": k, "mean_critic_score": round(statistics.mean(scores), 3),
                     "p50_ms": round(1000 * statistics.median(ts), 1), "n": len(scores)})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from core import paths
    from core.poet import Poet
    from training.corpus import load_split
    from training.two_sample import slim, train_lm, two_sample_requests, two_sample_test

    ap = argparse.ArgumentParser()
    ap.add_argument("--per-form", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--classifiers", default="ngram,transformer")
    ap.add_argument("--k-sweep", action="store_true", help="Only the K (candidates) trade-off, on 七绝 requests.")
    ap.add_argument("--conditions", default=",".join(CONDITIONS), help=f"comma-separated, of {', '.join(CONDITIONS)}")
    ap.add_argument("--score", choices=SCORES, default=None,
                    help="What the critic chooses and mends by (default: what its card says).")
    a = ap.parse_args(argv)
    conditions = [c for c in a.conditions.split(",") if c]
    if unknown := [c for c in conditions if c not in CONDITIONS]:
        ap.error(f"unknown condition(s) {', '.join(unknown)}; choose from {', '.join(CONDITIONS)}")
    out = a.out or paths.data_home() / "runs" / "critic-eval"
    out.mkdir(parents=True, exist_ok=True)
    ds = paths.dataset_dir()
    test = load_split(ds, "test")
    pairs = two_sample_requests(test, a.per_form, seed=0)
    if a.k_sweep:
        poet = Poet.load(critic="on")
        rows = candidates_tradeoff(poet, [(r, row) for r, row in pairs if r.form == "七绝"])
        (out / "k_sweep.json").write_text(json.dumps(rows, indent=1), "utf-8")
        poet.close()
        return 0
    res: dict = {"requests": len(pairs), "conditions": {}}
    lm = train_lm(ds)
    critic_poet = Poet.load(critic="on")  # measured whether or not the shipped card says promoted
    if critic_poet.critic is None:
        raise ShirenError("no critic to measure (models/critic or SHIREN_CRITIC_DIR)")
    if a.score:
        critic_poet.critic.card.score = a.score
    res["score"] = critic_poet.critic.card.score
    plain_poet = Poet.load(critic=None)
    k_poet = Poet.load(critic=None, min_drafts=critic_poet.candidates)
    examples: list[dict] = []
    for cond in conditions:
        poet = {"plain": plain_poet, "plain-k8": k_poet}.get(cond, critic_poet)
        critic_poet.polish = cond.startswith("choose+mend")
        critic_poet.mend_guard = cond == "choose+mend"
        t = time.time()
        real, gen, mended = generate(poet, pairs)
        print(f"{cond}: {len(gen)} poems in {time.time() - t:.0f} s", flush=True)
        if cond == "choose+mend":
            examples = mended
        res.setdefault("mended_share_by_condition", {})[cond] = len(mended) / max(1, len(pairs))
        r = two_sample_test(real, gen, groups_a=[p["group"] for p in real], groups_b=[p["group"] for p in gen],
                            classifiers=tuple(a.classifiers.split(",")), lm=lm, names=("real", cond), n_boot=500)
        res["conditions"][cond] = slim(r)
        (out / f"generated-{cond.replace('+', '-')}.jsonl").write_text(
            "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in gen), "utf-8")
        for name, c in r["classifiers"].items():
            print(f"  {name}: accuracy {c['accuracy']:.3f}, AUC {c['auc']:.3f}", flush=True)
    valid = load_split(ds, "valid")
    res["doubt"] = doubt_quality(critic_poet.critic, valid)
    print("doubt:", res["doubt"], flush=True)
    res["mend_examples"] = [{**e, "before": before_text(e["after"], e["edits"])} for e in examples[:12]]
    res["mended_share"] = len(examples) / max(1, len(pairs))
    (out / "results.json").write_text(json.dumps(res, ensure_ascii=False, indent=1), "utf-8")
    print(f"wrote {out / 'results.json'}")
    for p in (critic_poet, plain_poet, k_poet):
        p.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
