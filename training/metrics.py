"""Text metrics for generated poems: distinct-n, repeats, char-level BLEU and ROUGE-L; a bootstrap interval."""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import Counter
from collections.abc import Callable

_PUNCT = re.compile(r"[，。？！；：、\n]")


def chars(text: str) -> list[str]:
    return [c for c in _PUNCT.sub("", text)]


def distinct_n(texts: list[str], n: int) -> float:
    grams = [tuple(cs[i : i + n]) for t in texts for cs in [chars(t)] for i in range(len(cs) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def repeated_char_rate(text: str) -> float:
    """Share of characters that repeat an earlier character of the same poem."""
    cs = chars(text)
    return (len(cs) - len(set(cs))) / max(1, len(cs))


def bleu(hyp: str, ref: str, max_n: int = 4) -> float:
    """Sentence BLEU over characters with add-one smoothing (Lin & Och 2004) for n > 1."""
    h, r = chars(hyp), chars(ref)
    if not h:
        return 0.0
    logs = []
    for n in range(1, max_n + 1):
        hg = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
        rg = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
        match = sum(min(c, rg[g]) for g, c in hg.items())
        total = max(1, sum(hg.values()))
        if n == 1:
            if match == 0:
                return 0.0
            logs.append(math.log(match / total))
        else:
            logs.append(math.log((match + 1) / (total + 1)))
    bp = 1.0 if len(h) > len(r) else math.exp(1 - len(r) / len(h))
    return bp * math.exp(sum(logs) / max_n)


def rouge_l(hyp: str, ref: str) -> float:
    """ROUGE-L F1 over characters (longest common subsequence)."""
    h, r = chars(hyp), chars(ref)
    if not h or not r:
        return 0.0
    prev = [0] * (len(r) + 1)
    for a in h:
        cur = [0]
        for j, b in enumerate(r):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, rc = lcs / len(h), lcs / len(r)
    return 2 * p * rc / (p + rc)


def bootstrap_ci(values: list[float], n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean."""
    if not values:
        return (float("nan"),) * 3
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choice(values) for _ in range(n)) / n for _ in range(n_boot))
    lo, hi = means[int(alpha / 2 * n_boot)], means[min(n_boot - 1, int((1 - alpha / 2) * n_boot))]
    return statistics.fmean(values), lo, hi


def roc_auc(labels: list[int], scores: list[float]) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative), ties ½
    (the Mann–Whitney statistic). 0.5 = the scores cannot tell the classes apart; nan if a class is empty."""
    pairs = sorted(zip(scores, labels, strict=True))
    n_pos = sum(1 for y in labels if y)
    n_neg = len(labels) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg = (i + 1 + j) / 2
        rank_sum += avg * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_groups(stat: Callable[[list], float], items: list, groups: list, n_boot: int = 2000, seed: int = 0,
                     alpha: float = 0.05) -> tuple[float, float, float]:
    """(stat(items), low, high): percentile bootstrap resampling whole groups (e.g. a real poem and the
    poem generated for its request; one reader's answers), so paired items stay together."""
    import math as _m

    by: dict = {}
    for it, g in zip(items, groups, strict=True):
        by.setdefault(g, []).append(it)
    keys = sorted(by, key=str)
    rng = random.Random(seed)
    vals = []
    for _ in range(n_boot):
        sample = [it for _k in range(len(keys)) for it in by[keys[rng.randrange(len(keys))]]]
        v = stat(sample)
        if not _m.isnan(v):
            vals.append(v)
    point = stat(items)
    if not vals:
        return point, float("nan"), float("nan")
    vals.sort()
    lo, hi = vals[int(alpha / 2 * len(vals))], vals[min(len(vals) - 1, int((1 - alpha / 2) * len(vals)))]
    return point, lo, hi
