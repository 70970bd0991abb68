"""Which automatic signals agree with blind readers? Per-poem reader scores against per-poem signals.

    python -m training.reader_agreement [--blind docs/blind] [--json OUT.json] [--md OUT.md]

Reads every answer key in `--blind` (`key-<ID>.json`) with its filled sheets (`filled-<ID>-*.md`), parsed
by `training.blind_test` (so a sheet it rejects is rejected here too). Each poem gets its readers' scores
averaged: fluency, coherence, meaning, `overall` (the mean of those three), `humanness` (−confidence for
"machine", +confidence for "human", −5…5) and `p_human` (the share of readers who said human).

Each poem also gets automatic signals (`model_signals`, `surface_signals`): mean ln P per character under
the base model and under base + adapter (form and 词牌 only, as the two-sample test scores), under the
poet's own prompt (the request's title, keywords, acrostic; only the characters the decoder sampled),
the score `Poet` ranks drafts by today (`core.poet.rank_score`) and with the critic (`+ CRITIC_WEIGHT` ×
its human-likeness logit), the critic's human-likeness logit, its masked LM's pseudo-log-likelihood
(mean, worst character, mean of the worst three), how much the earlier lines help the base model predict
the later ones (`context_gain`, a PMI), the base model's gain over character frequency (`slor`), a
character trigram LM of the train split, and surface features (length, distinct characters, common
characters, n-grams and lines found in the corpus).

Reported: the Spearman correlation of each signal with each reader score among generated poems, among real
poems and over all poems, **stratified by sheet and form** (ranks taken within each: the sheets had different
readers and different generators, and forms differ in length and difficulty, so a shift between strata would
otherwise pose as a correlation), with 95% bootstrap intervals (poems resampled within strata); the agreement
between the readers of each sheet (the ceiling: no signal can agree with the readers' mean much better than
their reliability allows); the same with forms mixed, by request kind and per sheet; poems of the same request
on two sheets; and a ridge combination of all signals, fitted on one sheet's generated poems and tested on the
other's (leave-one-sheet-out), beside the single signal the training sheet would have picked. See docs/critic.md.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.blind_test import SCORES, machine_score, parse_sheet

READER_SCORES = (*SCORES, "overall", "humanness", "p_human")
SUBSETS = ("generated", "real", "all")
_PUNCT = re.compile(r"[，。？！；：、,.?!;:\s]+")

# A signal provider: poems → {signal name: one value per poem}.
SignalFn = Callable[[list[dict]], dict[str, list[float]]]


# ---- readings -------------------------------------------------------------------------------------
@dataclass
class Reading:
    """One sheet's answer key and its filled sheets (reader name → `parse_sheet` result)."""

    key: dict
    sheets: dict[str, dict]


def find_readings(blind_dir: Path) -> dict[str, Reading]:
    """Every key in `blind_dir` that has filled sheets, by sheet id; readers named from the file name
    (`filled-<ID>-readerA.md` → readerA)."""
    out: dict[str, Reading] = {}
    for kp in sorted(Path(blind_dir).glob("key-*.json")):
        key = json.loads(kp.read_text("utf-8"))
        sid = key["sheet_id"]
        sheets = {}
        for fp in sorted(Path(blind_dir).glob(f"filled-{sid}-*.md")):
            sheets[fp.stem.removeprefix(f"filled-{sid}-")] = parse_sheet(fp.read_text("utf-8"), len(key["items"]), sid, str(fp))
        if sheets:
            out[sid] = Reading(key, sheets)
    return out


def reader_scores(answers: Sequence[dict]) -> dict[str, float]:
    """One poem's answers (one dict per reader) → the readers' mean of every reader score."""
    out = {f: float(np.mean([a[f] for a in answers])) for f in SCORES}
    out["overall"] = float(np.mean([np.mean([a[f] for f in SCORES]) for a in answers]))
    out["humanness"] = float(np.mean([-machine_score(a) for a in answers]))
    out["p_human"] = float(np.mean([a["guess"] == "human" for a in answers]))
    return out


def poem_table(readings: dict[str, Reading]) -> list[dict]:
    """One row per poem on every sheet: its key entry, each reader's answers and the readers' means."""
    rows = []
    for sid, rd in readings.items():
        names = sorted(rd.sheets)
        for it in rd.key["items"]:
            answers = {r: rd.sheets[r]["answers"][it["no"]] for r in names}
            rows.append({"sheet": sid, "no": it["no"], "source": it["source"], "form": it.get("form", ""),
                         "cipai": it.get("cipai", ""), "title": it.get("title", ""), "ref": it.get("ref", ""),
                         "text": it["body"], "request": it.get("request"), "readers": answers,
                         "scores": reader_scores(list(answers.values()))})
    return rows


# ---- rank statistics ------------------------------------------------------------------------------
def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties given their average rank (any leading batch axes)."""
    a = np.asarray(a, dtype=np.float64)
    less = (a[..., :, None] > a[..., None, :]).sum(-1)
    equal = (a[..., :, None] == a[..., None, :]).sum(-1)
    return less + (equal + 1) / 2.0


def _groups(strata: Sequence[Any] | None, n: int) -> list[np.ndarray]:
    """Index arrays of the items of each stratum (one stratum when None), strata in sorted order."""
    if strata is None:
        return [np.arange(n)]
    by: dict = {}
    for i, s in enumerate(strata):
        by.setdefault(s, []).append(i)
    return [np.array(v) for _, v in sorted(by.items(), key=lambda kv: str(kv[0]))]


def centred_ranks(values: Sequence[float], strata: Sequence[Any] | None = None) -> np.ndarray:
    """(rank − (n+1)/2) / n of each value within its stratum, in the values' own order."""
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros(len(v))
    for g in _groups(strata, len(v)):
        out[g] = (rankdata(v[g]) - (len(g) + 1) / 2.0) / len(g)
    return out


def boot_indices(groups: list[np.ndarray], n_boot: int, seed: int) -> list[np.ndarray]:
    """Per stratum, (n_boot, n_s) indices resampled with replacement within it."""
    rng = np.random.default_rng(seed)
    return [g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in groups]


def _boot_corr(x: np.ndarray, y: np.ndarray, groups: list[np.ndarray], boot: list[np.ndarray] | None,
               drop_constant: bool = True) -> np.ndarray:
    """Stratified Spearman of the items as they are ([0]), then of each bootstrap resample ([1:]): ranks
    centred within each stratum, pooled. With `drop_constant` a stratum where either side is constant
    carries no rank information and is left out (of that resample); without it, it still counts (a
    predictor that ties a stratum's poems is charged for it). nan when nothing is left."""
    num = sxx = syy = 0.0
    for k, g in enumerate(groups):
        i = g[None, :] if boot is None else np.concatenate([g[None, :], boot[k]])
        n = i.shape[1]
        xr, yr = (rankdata(x[i]) - (n + 1) / 2.0) / n, (rankdata(y[i]) - (n + 1) / 2.0) / n
        ok = (np.abs(xr).sum(-1) > 0) & (np.abs(yr).sum(-1) > 0) if drop_constant else np.ones(len(i), dtype=bool)
        num = num + ok * (xr * yr).sum(-1)
        sxx = sxx + ok * (xr * xr).sum(-1)
        syy = syy + ok * (yr * yr).sum(-1)
    den = np.sqrt(np.asarray(sxx) * np.asarray(syy))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.asarray(num) / np.where(den > 0, den, 1.0), np.nan)


def stratified_spearman(x: Sequence[float], y: Sequence[float], strata: Sequence[Any] | None = None,
                        drop_constant: bool = True) -> float:
    """Spearman's rho with ranks taken within each stratum (e.g. a sheet, or a sheet and form), then
    pooled: a shift of one stratum's values does not count. One stratum: plain Spearman. nan when
    either side is constant in every stratum (`drop_constant`: see `_boot_corr`)."""
    return float(_boot_corr(np.asarray(x, float), np.asarray(y, float), _groups(strata, len(x)), None,
                            drop_constant)[0])


def _ci(vals: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """(point, low, high) from [point, *bootstrap values] (nan resamples dropped)."""
    point, rest = float(vals[0]), vals[1:]
    rest = rest[~np.isnan(rest)]
    if math.isnan(point) or len(rest) == 0:
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(rest, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


# ---- the analysis ---------------------------------------------------------------------------------
STRATA = ("sheet", "form")  # ranks within a sheet (its readers) and form (what one request fixes)


def strata_of(poems: list[dict], by: Sequence[str] = STRATA) -> list[str]:
    return ["/".join(str(p.get(k, "")) for k in by) for p in poems]


def request_kind(poem: dict) -> str:
    """What the request fixed: acrostic, keywords, title+keywords, title, first_line or none ("real" for
    real poems, "" when the request is unknown)."""
    if poem["source"] != "generated":
        return "real"
    r = poem.get("request")
    if not r:
        return ""
    if r.get("acrostic"):
        return "acrostic"
    if r.get("first_line"):
        return "first_line"
    if r.get("keywords"):
        return "title+keywords" if r.get("title") else "keywords"
    return "title" if r.get("title") else "none"


def same_request_pairs(poems: list[dict], signals: Sequence[str], target: str = "overall", n_boot: int = 2000,
                       seed: int = 0) -> dict:
    """Generated poems of two sheets written for the same request (same `ref`): the readers' `target`
    difference (later sheet − earlier, by sheet id) with its bootstrap interval, and per signal the mean
    difference and the Spearman of signal differences with reader differences (over pairs). Different
    readers read the two poems of a pair, so reader scale is not controlled."""
    by: dict = {}
    for p in poems:
        if p["source"] == "generated" and p.get("ref"):
            by.setdefault(p["ref"], {})[p["sheet"]] = p
    pairs = [tuple(v[k] for k in sorted(v, key=str)[:2]) for _, v in sorted(by.items()) if len(v) >= 2]
    if len(pairs) < 3:
        return {"n": len(pairs)}
    dy = np.array([b["scores"][target] - a["scores"][target] for a, b in pairs])
    g = [np.arange(len(pairs))]
    boot = boot_indices(g, n_boot, seed)
    means = np.concatenate([[dy.mean()], dy[boot[0]].mean(1)])
    out: dict = {"n": len(pairs), "target": target, "sheets": sorted({p["sheet"] for ab in pairs for p in ab}, key=str),
                 "diff": _ci(means), "signals": {}}
    for s in signals:
        dx = np.array([b["signals"][s] - a["signals"][s] for a, b in pairs])
        out["signals"][s] = {"mean_diff": float(dx.mean()), "rho": _ci(_boot_corr(dx, dy, g, boot))}
    return out


def _subset(poems: list[dict], subset: str) -> list[dict]:
    return poems if subset == "all" else [p for p in poems if p["source"] == subset]


def agreement(poems: list[dict], signals: Sequence[str], scores: Sequence[str] = READER_SCORES,
              baseline: str | None = None, by: Sequence[str] = STRATA, n_boot: int = 2000, seed: int = 0) -> dict:
    """{signal: {score: (rho, low, high)}} over `poems`, stratified by `by` (bootstrap within strata; the
    same resamples for every signal), plus {signal: {score: (rho − rho of `baseline`, low, high)}} under
    "vs_baseline" when a baseline signal is named (a paired comparison)."""
    groups = _groups(strata_of(poems, by), len(poems))
    boot = boot_indices(groups, n_boot, seed)
    ys = {s: np.array([p["scores"][s] for p in poems]) for s in scores}
    xs = {g: np.array([p["signals"][g] for p in poems], dtype=float) for g in signals}
    raw = {g: {s: _boot_corr(xs[g], ys[s], groups, boot) for s in scores} for g in signals}
    out: dict = {"n": len(poems), "strata": len(groups), "by": list(by),
                 "rho": {g: {s: _ci(raw[g][s]) for s in scores} for g in signals},
                 # poems in the strata where the signal varies (the others carry no rank information)
                 "n_used": {g: int(sum(len(i) for i in groups if len(set(xs[g][i].tolist())) > 1)) for g in signals}}
    if baseline is not None and baseline in raw:
        out["baseline"] = baseline
        out["vs_baseline"] = {g: {s: _ci(raw[g][s] - raw[baseline][s]) for s in scores} for g in signals if g != baseline}
    return out


def inter_reader(poems: list[dict], scores: Sequence[str] = READER_SCORES, by: Sequence[str] = STRATA,
                 n_boot: int = 2000, seed: int = 0) -> dict:
    """How well the readers of a sheet agree with each other (the ceiling for any signal): stratified
    Spearman of the first two readers' per-poem answers, with its bootstrap interval; `k` readers per
    poem; and the ceiling sqrt(Spearman–Brown reliability of the k-reader mean), the correlation a
    perfect signal could expect with the readers' mean if readers are parallel measures of one thing."""
    poems = [p for p in poems if len(p["readers"]) >= 2]
    if not poems:
        return {}
    groups = _groups(strata_of(poems, by), len(poems))
    boot = boot_indices(groups, n_boot, seed)
    k = min(len(p["readers"]) for p in poems)
    out: dict = {"n": len(poems), "k": k, "rho": {}, "ceiling": {}}
    for s in scores:
        a, b = ([reader_scores([p["readers"][sorted(p["readers"])[i]]])[s] for p in poems] for i in (0, 1))
        r = _ci(_boot_corr(np.array(a), np.array(b), groups, boot))
        out["rho"][s] = r
        out["ceiling"][s] = math.sqrt(k * r[0] / (1 + (k - 1) * r[0])) if r[0] > 0 else float("nan")
    return out


def _ridge_fit(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> tuple[np.ndarray, float]:
    """Ridge weights (no intercept: x and y are centred ranks), alpha chosen by exact leave-one-out error."""
    best: tuple[float, float] | None = None
    for a in alphas:
        h = x @ np.linalg.solve(x.T @ x + a * np.eye(x.shape[1]), x.T)
        loo = float((((y - h @ y) / (1 - np.diag(h))) ** 2).mean())
        if best is None or loo < best[0]:
            best = (loo, a)
    a = best[1] if best else alphas[0]
    return np.linalg.solve(x.T @ x + a * np.eye(x.shape[1]), x.T @ y), a


def leave_one_sheet_out(poems: list[dict], signals: Sequence[str], target: str = "overall", by: Sequence[str] = STRATA,
                        alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0), n_boot: int = 2000,
                        seed: int = 0) -> dict:
    """A ridge combination of `signals` (each as ranks centred within strata) fitted to the readers'
    `target` on all sheets but one, alpha by leave-one-out on those, tested on the held-out sheet; beside
    it the single signal that agrees best on the training sheets (its sign kept), tested the same way.
    Held-out stratified Spearman per sheet, and pooled over the held-out predictions (the interval
    resamples held-out poems only, not the fitting); a stratum whose poems a predictor ties still counts."""
    sheets = sorted({p["sheet"] for p in poems}, key=str)
    if len(sheets) < 2:
        return {}

    def design(ps: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        st = strata_of(ps, by)
        x = np.stack([centred_ranks([p["signals"][s] for p in ps], st) for s in signals], axis=1)
        return x, centred_ranks([p["scores"][target] for p in ps], st), st

    folds, pred_r, pred_s, truth, strata = {}, [], [], [], []
    for held in sheets:
        train = [p for p in poems if p["sheet"] != held]
        test = [p for p in poems if p["sheet"] == held]
        xtr, ytr, st_tr = design(train)
        w, alpha = _ridge_fit(xtr, ytr, alphas)
        xte, _, st_te = design(test)
        single = {s: stratified_spearman(xtr[:, j], ytr, st_tr, False) for j, s in enumerate(signals)}
        pick = max(signals, key=lambda s: -1.0 if math.isnan(single[s]) else abs(single[s]))
        sign = -1.0 if single[pick] < 0 else 1.0
        yte = [p["scores"][target] for p in test]
        pr, ps = xte @ w, sign * xte[:, list(signals).index(pick)]
        folds[held] = {"n_train": len(train), "n_test": len(test), "alpha": alpha,
                       "weights": {s: round(float(v), 4) for s, v in zip(signals, w, strict=True)},
                       "ridge_rho": stratified_spearman(pr, yte, st_te, False), "single": pick, "single_sign": sign,
                       "single_train_rho": single[pick], "single_rho": stratified_spearman(ps, yte, st_te, False)}
        pred_r += pr.tolist()
        pred_s += ps.tolist()
        truth += yte
        strata += st_te
    groups = _groups(strata, len(strata))
    boot = boot_indices(groups, n_boot, seed)
    t = np.array(truth)
    return {"target": target, "signals": list(signals), "by": list(by), "folds": folds,
            "ridge": _ci(_boot_corr(np.array(pred_r), t, groups, boot, False)),
            "single": _ci(_boot_corr(np.array(pred_s), t, groups, boot, False))}


def analyse(poems: list[dict], signals: Sequence[str], baseline: str | None = "poet_rank", n_boot: int = 2000,
            seed: int = 0, target: str = "overall", by: Sequence[str] = STRATA) -> dict:
    """The whole report: per subset (generated, real, all) the signal × reader-score table, stratified by
    `by`, and the readers' agreement; generated poems stratified by sheet only (forms mixed, as a
    contrast); per sheet, generated only; the leave-one-sheet-out combination on generated poems."""
    res: dict = {"signals": list(signals), "scores": list(READER_SCORES), "n_boot": n_boot, "seed": seed,
                 "by": list(by), "sheets": sorted({p["sheet"] for p in poems}, key=str), "subsets": {}, "per_sheet": {}}
    for sub in SUBSETS:
        ps = _subset(poems, sub)
        if ps:
            res["subsets"][sub] = {**agreement(ps, signals, READER_SCORES, baseline, by, n_boot, seed),
                                   "readers": inter_reader(ps, READER_SCORES, by, n_boot, seed),
                                   "means": {s: float(np.mean([p["scores"][s] for p in ps])) for s in READER_SCORES}}
    for p in poems:
        p["kind"] = request_kind(p)
    gen = _subset(poems, "generated")
    if gen and any(p["kind"] for p in gen):
        res["generated_by_kind"] = {**agreement(gen, signals, (target,), None, ("sheet", "kind"), n_boot, seed),
                                    "readers": inter_reader(gen, (target,), ("sheet", "kind"), n_boot, seed)}
    res["same_request"] = same_request_pairs(gen, signals, target, n_boot, seed)
    if gen and "form" in by:
        loose = [k for k in by if k != "form"]
        res["generated_forms_mixed"] = {**agreement(gen, signals, (target,), None, loose, n_boot, seed),
                                        "readers": inter_reader(gen, (target,), loose, n_boot, seed)}
    for sid in res["sheets"]:
        ps = [p for p in gen if p["sheet"] == sid]
        if ps:
            res["per_sheet"][sid] = {**agreement(ps, signals, (target,), None, by, n_boot, seed),
                                     "readers": inter_reader(ps, (target,), by, n_boot, seed)}
    res["combination"] = leave_one_sheet_out(gen, signals, target, by, n_boot=n_boot, seed=seed)
    return res


def compute_signals(poems: list[dict], providers: Sequence[SignalFn]) -> list[str]:
    """Run each provider over the poems, storing `poem["signals"][name]`; returns the names in order."""
    names: list[str] = []
    for fn in providers:
        for name, vals in fn(poems).items():
            if len(vals) != len(poems):
                raise ValueError(f"signal {name!r}: {len(vals)} values for {len(poems)} poems")
            for p, v in zip(poems, vals, strict=True):
                p.setdefault("signals", {})[name] = float(v)
            names.append(name)
    return names


# ---- surface signals ------------------------------------------------------------------------------
def unigram_scorer(lm: Any) -> Callable[[str], float]:
    """text → mean ln of its characters' add-one corpus frequency under `lm` (a `NgramLM`'s unigrams)."""
    unk = lm.V - 1

    def score(text: str) -> float:
        ids = [lm.index.get(c, unk) for c in poem_chars(text)]
        return float(np.mean(np.log((lm.uni[ids] + 1) / (lm.N + lm.V)))) if ids else 0.0

    return score


def poem_chars(text: str) -> list[str]:
    """The poem's characters, punctuation and layout left out."""
    return [c for c in _PUNCT.sub("", text)]


def poem_clauses(text: str) -> list[str]:
    return [c for c in _PUNCT.split(text) if c]


def surface_signals(lm: Any = None, lines: Any = None, top_k: int = 500) -> SignalFn:
    """Length, distinct-character ratio; with `lm` (a `training.two_sample.NgramLM` of the train split)
    its mean ln P per char, the mean ln of each char's corpus frequency, the share of chars among the
    corpus's `top_k` most common, and the shares of the poem's within-line bigrams and trigrams the corpus
    never has; with `lines` (`core.corpus_lines.CorpusLines`) the lines found verbatim in the corpus."""

    def fn(poems: list[dict]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"n_chars": [], "distinct_chars": []}
        for p in poems:
            cs = poem_chars(p["text"])
            out["n_chars"].append(len(cs))
            out["distinct_chars"].append(len(set(cs)) / max(1, len(cs)))
        if lm is not None:
            from training.two_sample import SEP, normalize_body

            unk = lm.V - 1
            freq = lm.uni.copy()
            freq[[lm.index.get(SEP, unk), lm.index[lm.BOS], unk]] = 0
            top = set(np.argsort(-freq)[:top_k].tolist())
            unigram = unigram_scorer(lm)
            for k in ("trigram_lp", "unigram_lp", "common_share", "novel_bigrams", "novel_trigrams"):
                out[k] = []
            for p in poems:
                body = normalize_body(p["text"])
                out["trigram_lp"].append(lm.mean_logprob(body))
                ids = [lm.index.get(c, unk) for c in poem_chars(p["text"])]
                out["unigram_lp"].append(unigram(p["text"]))
                out["common_share"].append(float(np.mean([i in top for i in ids])))
                nov = {2: [], 3: []}
                for c in poem_clauses(p["text"]):
                    q = [lm.index.get(ch, unk) for ch in c]
                    for j in range(1, len(q)):
                        nov[2].append(lm._lookup(lm.bi_keys, lm.bi_counts, np.array([q[j - 1] * lm.V + q[j]]))[0] == 0)
                    for j in range(2, len(q)):
                        key = np.array([(q[j - 2] * lm.V + q[j - 1]) * lm.V + q[j]])
                        nov[3].append(lm._lookup(lm.tri_keys, lm.tri_counts, key)[0] == 0)
                out["novel_bigrams"].append(float(np.mean(nov[2])) if nov[2] else 0.0)
                out["novel_trigrams"].append(float(np.mean(nov[3])) if nov[3] else 0.0)
        if lines is not None:
            out["copied_lines"] = [sum(c in lines for c in poem_clauses(p["text"])) for p in poems]
        return out

    return fn


# ---- model signals --------------------------------------------------------------------------------
def _free_positions(poem: dict, vi: Any) -> list[int] | None:
    """Body positions (layout removed, punctuation counted) of the characters the decoder sampled for a
    generated poem: its request's plan rebuilt with the request's seed, as `Poet` builds it; fixed
    characters (acrostic heads, keywords, a first line) and 叠句 copies are not sampled. None when there
    is no request or the plan does not fit the poem."""
    from core.plan import build_plan
    from core.requests import normalize_request
    from core.revise import clause_lengths, poem_body
    from core.types import PoemRequest, RequestError

    if not poem.get("request") or poem["source"] != "generated":
        return None
    body = poem_body(poem["text"])
    try:
        req = normalize_request(PoemRequest(**{k: (tuple(v) if k == "keywords" else v) for k, v in poem["request"].items()}),
                                vi.vocab_chars)
    except (RequestError, TypeError):
        return None
    for lengths in (None, clause_lengths(body)):  # the seed's own variant first, then the poem's shape
        if lengths is not None and req.form != "词":
            break
        try:
            plan = build_plan(req, random.Random(req.seed), lengths)
        except RequestError:
            continue
        fits = len(plan.slots) == len(body) and all(
            (s.kind == "punct") == bool(_PUNCT.fullmatch(c)) and (not s.fixed or s.fixed == c)
            for s, c in zip(plan.slots, body, strict=True))
        if fits:
            return [i for i, s in enumerate(plan.slots) if s.kind == "char" and not s.fixed and s.copy_of < 0]
    return None


def prompt_header(poem: dict) -> str:
    """What the poet is conditioned on: the request's header for a generated poem; for a real poem, the
    header a title request of it would give (its form, 词牌 and title)."""
    from core.prompt import header

    req = poem.get("request")
    if req:
        return header(req["form"], title=req.get("title", ""), cipai=req.get("cipai", ""),
                      keywords=tuple(req.get("keywords", ())), acrostic=req.get("acrostic", ""),
                      first_line=req.get("first_line", ""))
    title = poem.get("title", "")
    title = "" if title == poem.get("cipai") else title[:20]
    return header(poem["form"], title=title, cipai=poem.get("cipai", "") if poem["form"] == "词" else "")


def causal_char_logprobs(model: Any, tokenizer: Any, seqs: list[tuple[str, str]], batch_size: int = 32) -> list[np.ndarray]:
    """For each (header, body): ln P of every body token given the header and the body before it (one
    token per character: the character tokenizer), float32 forward (core.scoring)."""
    from core.scoring import causal_token_logprobs

    enc = [(tokenizer(h, add_special_tokens=False)["input_ids"], tokenizer(b, add_special_tokens=False)["input_ids"])
           for h, b in seqs]
    return [lp.numpy() for lp in causal_token_logprobs(model, enc, tokenizer.pad_token_id, batch_size)]


def model_signals(base: Any, adapter: Any, tokenizer: Any, critic: Any = None, lines: Any = None,
                  unigram_lp: Callable[[str], float] | None = None, amateur: Any = None) -> SignalFn:
    """The signals of the shipped models. `base`, `adapter`: transformers causal LMs (base, and base with
    the active adapter merged); `critic`: a `core.critic.Critic` with its human-likeness head; `lines`: the
    corpus lines (for the ranking score's copy penalty; real poems, being the corpus, are never charged);
    `unigram_lp`: text → mean ln corpus frequency per char (for `slor`); `amateur`: contrastive decoding's
    amateur, a transformers causal LM (for `lp_amateur` and `cd_gain`, core.contrast)."""
    from core.critic.critic import _LAYOUT
    from core.generate import VocabIndex
    from core.poet import CRITIC_WEIGHT, analyze_scores, line_penalties, rank_score
    from core.prompt import header
    from core.revise import poem_body
    from training.two_sample import base_model_logprobs

    vi = VocabIndex(tokenizer)

    def fn(poems: list[dict]) -> dict[str, list[float]]:
        dicts = [{"text": p["text"], "form": p["form"], "cipai": p.get("cipai", "")} for p in poems]
        out: dict[str, list[float]] = {"lp_base": base_model_logprobs(base, tokenizer, dicts),
                                       "lp_adapter": base_model_logprobs(adapter, tokenizer, dicts)}
        bodies = [poem_body(p["text"]) for p in poems]
        char_pos = [[i for i, c in enumerate(b) if not _PUNCT.fullmatch(c)] for b in bodies]
        free = [_free_positions(p, vi) for p in poems]
        lps = causal_char_logprobs(adapter, tokenizer, [(prompt_header(p), b) for p, b in zip(poems, bodies, strict=True)])
        out["lp_request"] = [float(np.mean(lp[f if f is not None else cp]))
                             for lp, f, cp in zip(lps, free, char_pos, strict=True)]
        # The worst sampled characters (readers' commonest cue is one word that is not a word): the lowest
        # ln P, and the mean of the lowest three, under the request's prompt.
        worst = [np.sort(lp[f if f is not None else cp]) for lp, f, cp in zip(lps, free, char_pos, strict=True)]
        out["lp_request_min"] = [float(w[0]) if len(w) else 0.0 for w in worst]
        out["lp_request_worst3"] = [float(np.mean(w[:3])) if len(w) else 0.0 for w in worst]
        if amateur is not None:  # what contrastive decoding rewards: the adapter's ln P over the amateur's
            alps = causal_char_logprobs(amateur, tokenizer, [(prompt_header(p), b) for p, b in zip(poems, bodies, strict=True)])
            pos = [f if f is not None else cp for f, cp in zip(free, char_pos, strict=True)]
            out["lp_amateur"] = [float(np.mean(a[q])) for a, q in zip(alps, pos, strict=True)]
            out["cd_gain"] = [float(np.mean(lp[q] - a[q])) for lp, a, q in zip(lps, alps, pos, strict=True)]
        out["poet_rank"] = []
        for p, lp_req in zip(poems, out["lp_request"], strict=True):
            copied, dup = line_penalties(p["text"].replace("\n", ""), (p.get("request") or {}).get("first_line", ""),
                                         lines if p["source"] == "generated" else None)
            strict = bool(analyze_scores(p["text"], p["form"], p.get("cipai", "")).get("tone_strict"))
            out["poet_rank"].append(rank_score(lp_req, copied, dup, strict))
        # How much the earlier lines help the base model predict each later line: mean over the chars of
        # lines 2.. of ln P(char | header, earlier lines) − ln P(char | header, its own line as the first).
        heads = [header(p["form"], cipai=p.get("cipai", "") if p["form"] == "词" else "") for p in poems]
        full = causal_char_logprobs(base, tokenizer, list(zip(heads, bodies, strict=True)))
        alone_seqs, owners = [], []
        for k, b in enumerate(bodies):
            starts = [m.start() for m in re.finditer(r"[^，。？！；：、]+", b)]
            for st in starts[1:]:
                clause = re.match(r"[^，。？！；：、]+", b[st:]).group(0)
                alone_seqs.append((heads[k], clause))
                owners.append((k, st, len(clause)))
        alone = causal_char_logprobs(base, tokenizer, alone_seqs)
        gains: list[list[float]] = [[] for _ in poems]
        for (k, st, n), lp in zip(owners, alone, strict=True):
            gains[k] += (full[k][st : st + n] - lp[:n]).tolist()
        out["context_gain"] = [float(np.mean(g)) if g else 0.0 for g in gains]
        if unigram_lp is not None:
            out["slor"] = [lb - unigram_lp(p["text"]) for lb, p in zip(out["lp_base"], poems, strict=True)]
        if critic is not None:
            hum = critic.score([p["text"] for p in poems], [p["form"] for p in poems]).tolist()
            out["critic_human"] = hum
            out["critic_rank"] = [r + CRITIC_WEIGHT * h for r, h in zip(out["poet_rank"], hum, strict=True)]
            out["mlm_pll4"] = critic.pll([p["text"] for p in poems], [p["form"] for p in poems], folds=4).tolist()
            out["mlm_pll"], out["mlm_min"], out["mlm_worst3"] = [], [], []
            for p in poems:
                body = p["text"].translate(_LAYOUT)
                pos = [i for i, c in enumerate(body) if not _PUNCT.fullmatch(c)]
                d = np.sort(np.array(critic.doubt(p["text"], p["form"], pos)))[::-1]
                out["mlm_pll"].append(-float(d.mean()))
                out["mlm_min"].append(-float(d[0]))
                out["mlm_worst3"].append(-float(d[:3].mean()))
        return out

    return fn


# ---- requests of keys that lack them ----------------------------------------------------------------
def fill_requests(poems: list[dict], requests_by_ref: dict[str, dict]) -> dict[str, int]:
    """Give generated poems whose key has no request the one their `ref` (the test poem the request was
    drawn from) names; check those that have one. Counts of filled, checked-equal and mismatched."""
    n = {"filled": 0, "agree": 0, "disagree": 0, "missing": 0}
    for p in poems:
        if p["source"] != "generated":
            continue
        req = requests_by_ref.get(p["ref"])
        if p.get("request"):
            n["agree" if req == p["request"] else "disagree"] += 1
        elif req is not None:
            p["request"] = req
            n["filled"] += 1
        else:
            n["missing"] += 1
    return n


# ---- output ---------------------------------------------------------------------------------------
SIGNAL_NOTES = {
    "lp_base": "base model, mean ln P/char (form, 词牌 only)",
    "lp_adapter": "base + adapter, mean ln P/char (form, 词牌 only)",
    "lp_request": "base + adapter under the request's prompt, sampled chars only",
    "lp_request_min": "the same, the lowest ln P of a sampled char",
    "lp_request_worst3": "the same, the mean of the 3 lowest",
    "poet_rank": "Poet's ranking score today (`rank_score`)",
    "critic_human": "critic's human-likeness logit",
    "critic_rank": "Poet's ranking score with `--critic`",
    "mlm_pll": "critic MLM pseudo-log-likelihood, mean ln P/char",
    "mlm_pll4": "the same with a quarter of the characters masked at once (4 forwards a poem: what choosing can afford)",
    "mlm_min": "critic MLM, ln P of the most doubted char",
    "mlm_worst3": "critic MLM, mean ln P of the 3 most doubted chars",
    "context_gain": "base model: ln P gain of later lines from earlier ones",
    "slor": "lp_base − mean ln corpus frequency",
    "lp_amateur": "contrastive decoding's amateur: mean ln P per sampled char, request prompt",
    "cd_gain": "lp_request − lp_amateur: what contrastive decoding rewards",
    "trigram_lp": "char trigram LM of the train split, mean ln P/char",
    "unigram_lp": "mean ln corpus frequency of the chars",
    "common_share": "share of chars among the corpus's 500 commonest",
    "novel_bigrams": "share of in-line bigrams absent from the train split",
    "novel_trigrams": "share of in-line trigrams absent from the train split",
    "copied_lines": "lines found verbatim in the corpus",
    "n_chars": "characters",
    "distinct_chars": "distinct chars / chars",
}


def _fmt(t: Sequence[float], signed: bool = True) -> str:
    if math.isnan(t[0]):
        return "—"
    f = "{:+.2f}" if signed else "{:.2f}"
    return f"{f.format(t[0])} [{f.format(t[1])}, {f.format(t[2])}]" if not math.isnan(t[1]) else f.format(t[0])


def _one_column(lines: list[str], title: str, cols: dict[str, dict], signals: Sequence[str], target: str) -> None:
    """A table of one reader score, a column per analysis (each an `agreement` result with its readers)."""
    lines += [title, "", "| signal | " + " | ".join(f"{c} (n = {r['n']})" for c, r in cols.items()) + " |",
              "|---|" + "---:|" * len(cols)]
    for g in signals:
        lines.append(f"| `{g}` | " + " | ".join(_fmt(r["rho"][g][target]) for r in cols.values()) + " |")
    lines.append("| *reader vs reader* | " + " | ".join(
        _fmt(r["readers"]["rho"][target]) if r.get("readers") else "—" for r in cols.values()) + " |")
    lines.append("")


def to_markdown(res: dict, scores: Sequence[str] | None = None) -> str:
    """Tables: per subset, each signal's stratified Spearman with each reader score [95% CI] and the
    readers' agreement; generated poems with forms mixed and per sheet; the leave-one-sheet-out combination."""
    lines: list[str] = []
    by = " and ".join(res.get("by", STRATA))
    for sub, r in res["subsets"].items():
        cols = list(scores or [s for s in res["scores"] if not (sub == "generated" and s == "p_human")])
        lines += [f"### {sub} poems (n = {r['n']}; Spearman within {by}, {r['strata']} strata; 95% bootstrap)", "",
                  "| signal | n used | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
        for g in res["signals"]:
            lines.append(f"| `{g}` | {r['n_used'][g]} | " + " | ".join(_fmt(r["rho"][g][s]) for s in cols) + " |")
        if r.get("readers"):
            rd = r["readers"]
            lines.append(f"| *reader vs reader* | {rd['n']} | " + " | ".join(_fmt(rd["rho"][s]) for s in cols) + " |")
            lines.append(f"| *ceiling: √ reliability of the {rd['k']}-reader mean* | | "
                         + " | ".join("—" if math.isnan(rd["ceiling"][s]) else f"{rd['ceiling'][s]:.2f}" for s in cols) + " |")
        if r.get("vs_baseline"):
            lines += ["", f"Spearman with `overall` minus that of `{r['baseline']}` (paired bootstrap): "
                      + ", ".join(f"`{g}` {_fmt(v['overall'])}" for g, v in r["vs_baseline"].items()
                                  if r["n_used"][g] == r["n_used"][r["baseline"]]) + "."]
        lines.append("")
    target = res.get("combination", {}).get("target", "overall")
    cols = {}
    if res.get("generated_forms_mixed"):
        cols["forms mixed, within sheet"] = res["generated_forms_mixed"]
    if res.get("generated_by_kind"):
        cols["within sheet and request kind"] = res["generated_by_kind"]
    cols.update({f"sheet {s}": r for s, r in res.get("per_sheet", {}).items()})
    if cols:
        _one_column(lines, f"### generated poems: `{target}` by other strata and per sheet", cols, res["signals"], target)
    sr = res.get("same_request", {})
    if sr.get("signals"):
        lines += [f"### the same request on two sheets ({sr['n']} pairs, {' → '.join(sr['sheets'])}; other readers)", "",
                  f"Readers' `{sr['target']}` difference: {_fmt(sr['diff'])}.", "",
                  "| signal | mean difference | Spearman of differences with the readers' |", "|---|---:|---:|"]
        for g, v in sr["signals"].items():
            lines.append(f"| `{g}` | {v['mean_diff']:+.3f} | {_fmt(v['rho'])} |")
        lines.append("")
    c = res.get("combination")
    if c:
        lines += [f"### a combination fitted on one sheet's generated poems, tested on the other's (`{c['target']}`)", "",
                  "| held-out sheet | ridge on all signals (alpha) | single best signal on the training sheet | its held-out rho |",
                  "|---|---:|---|---:|"]
        for sid, f in c["folds"].items():
            sign = "" if f["single_sign"] > 0 else "−"
            lines.append(f"| {sid} | {f['ridge_rho']:+.2f} ({f['alpha']:g}) | {sign}`{f['single']}` "
                         f"(train {f['single_train_rho']:+.2f}) | {f['single_rho']:+.2f} |")
        lines += [f"| pooled held-out | {_fmt(c['ridge'])} | | {_fmt(c['single'])} |", ""]
    return "\n".join(lines)


def slim(res: dict) -> dict:
    """JSON-ready: tuples as lists, floats rounded."""
    def conv(x):
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [conv(v) for v in x]
        if isinstance(x, float):
            return None if math.isnan(x) else round(x, 4)
        return x
    return conv(res)


# ---- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training.reader_agreement", description=__doc__.split("\n")[0])
    ap.add_argument("--blind", type=Path, default=Path("docs/blind"), help="keys and filled sheets")
    ap.add_argument("--model-dir", type=Path, default=None, help="base model (default: the shipped one)")
    ap.add_argument("--adapter", type=Path, default=None, help="adapter (default: the shipped active one)")
    ap.add_argument("--critic-dir", type=Path, default=None, help="critic (default: the shipped one)")
    ap.add_argument("--no-models", action="store_true", help="surface signals only")
    ap.add_argument("--no-lm", action="store_true", help="skip the train-split trigram LM (needs the dataset)")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the results (and per-poem signals) here")
    ap.add_argument("--md", type=Path, default=None, help="write the tables here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from core import paths
    from core.atomic import write_text

    readings = find_readings(args.blind)
    if not readings:
        raise SystemExit(f"no filled sheets with keys in {args.blind}")
    poems = poem_table(readings)
    print(f"{len(readings)} sheet(s): " + ", ".join(f"{s} ({', '.join(r.sheets)})" for s, r in readings.items())
          + f"; {len(poems)} poems", flush=True)
    lm = None
    if not args.no_lm or not args.no_models:
        try:
            from training.corpus import load_split
            from training.two_sample import two_sample_requests

            test = load_split(paths.dataset_dir(), "test")
            reqs = {row["id"]: req.to_dict() for req, row in two_sample_requests(test, 40, seed=0)}
            print("requests from the test split:", fill_requests(poems, reqs), flush=True)
            if not args.no_lm:
                from training.two_sample import train_lm

                lm = train_lm(paths.dataset_dir())
        except Exception as e:  # noqa: BLE001 - no dataset dir, or an unreadable one: go on without it
            print(f"no dataset ({e}): no trigram LM, and keys without requests are scored on form alone")
    lines = None
    providers: list[SignalFn] = []
    if not args.no_models:
        from transformers import AutoTokenizer

        from core.adapters import shipped_default
        from core.corpus_lines import FILE_NAME, CorpusLines
        from core.critic.critic import Critic
        from core.weights import load_llama

        mdir = args.model_dir or paths.model_dir()
        adir = args.adapter or shipped_default()
        tok = AutoTokenizer.from_pretrained(str(mdir))
        base = load_llama(mdir).hf_model()
        adapted = load_llama(mdir, adir).hf_model() if adir else base
        critic = Critic.load(args.critic_dir)
        am_dir = paths.amateur_dir()
        amateur = load_llama(am_dir).hf_model() if (am_dir / "config.json").exists() else None
        lines = CorpusLines.load(mdir / FILE_NAME)
        uni = unigram_scorer(lm) if lm is not None else None
        print(f"models: {mdir}, adapter {adir}, critic {critic.path}", flush=True)
        providers.append(model_signals(base, adapted, tok, critic, lines, uni, amateur))
    providers.append(surface_signals(lm, lines))
    signals = compute_signals(poems, providers)
    res = analyse(poems, signals, "poet_rank" if "poet_rank" in signals else None, args.n_boot, args.seed)
    md = to_markdown(res)
    print(md)
    if args.md:
        head = (f"# Reader agreement\n\n`python -m training.reader_agreement`: sheets {', '.join(res['sheets'])}, "
                f"{args.n_boot} bootstrap resamples, seed {args.seed}. Read with docs/critic.md "
                "(\"Which signals agree with readers\").\n\n")
        write_text(args.md, head + md)
    if args.json:
        per = [{k: p[k] for k in ("sheet", "no", "source", "form", "kind", "ref", "text", "scores", "signals")} for p in poems]
        write_text(args.json, json.dumps(slim({**res, "poems": per}), ensure_ascii=False, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
