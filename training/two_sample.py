"""Can a classifier tell two sets of poems apart? A two-sample test for readability, not just form.

Set A (label 0, e.g. real poems of the test split) against set B (label 1, e.g. poems generated for
the same requests). Both are compared as **bodies normalised the same way** (`normalize_body`: no
title, no 词牌 name, no line breaks, every punctuation mark the same ，), so neither formatting nor
metadata can give the answer away; what is left is the words.

Two classifiers, each cross-validated (K folds, fixed seed; a real poem and the poem generated for
its request share a group, so a pair is never split between train and held-out fold):

- **ngram**: TF-IDF of character 1–3-grams → L2-regularised logistic regression (torch, L-BFGS);
- **transformer**: a tiny BERT-style encoder (`transformers.BertForSequenceClassification`) over
  characters, trained from scratch on each training fold (a few seconds per fold on one core).

Reported on the pooled held-out predictions: accuracy and ROC-AUC (0.5 = indistinguishable, 1 =
always told apart), each with a group-bootstrap 95% interval. Plus the **likelihood gap**: the mean
per-character log-likelihood of both sets under an independent model (`NgramLM`, a character
trigram LM of the train split, and optionally the base model), with the AUC of that number alone
as a detector: generated text is typically more predictable than real text.

    python -m training.two_sample compare --a real.jsonl --b generated.jsonl [--json]
    shiren eval --two-sample                      # generate for test-split requests, then compare

Each JSONL line: {"text": "...", "form": "七绝", "cipai": "", "group": "<pair id>"} (only text needed).
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from training.metrics import bootstrap_groups, roc_auc

_PUNCT_RUN = re.compile(r"[\s，。？！；：、,.?!;:·　]+")
SEP = "，"


def normalize_body(text: str) -> str:
    """The poem body as the classifiers see it: clauses joined by ，, no newlines or other marks."""
    return SEP.join(c for c in _PUNCT_RUN.split(text) if c)


def canonical_text(text: str) -> str:
    """Punctuation reduced to ，and 。 (？！； → 。, ：、 → ，), no newlines: the poem as a reader or a
    language model sees it, with the writer's punctuation habits taken out."""
    t = re.sub(r"\s+", "", text)
    t = re.sub(r"[？！；?!;]", "。", t)
    t = re.sub(r"[：、:,]", "，", t)
    return re.sub(r"([，。])[，。]+", r"\1", t)


def load_poems(path: Path) -> list[dict]:
    """Poems from a JSONL file (one {"text": …} object a line; blank lines skipped)."""
    out = []
    for i, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except ValueError as e:
            raise ValueError(f"{path}:{i}: not JSON ({e})") from e
        if isinstance(d, str):
            d = {"text": d}
        if not isinstance(d, dict) or not isinstance(d.get("text"), str) or not d["text"].strip():
            raise ValueError(f"{path}:{i}: each line must be an object with a non-empty \"text\"")
        out.append(d)
    return out


def _texts(poems) -> list[str]:
    return [p if isinstance(p, str) else p["text"] for p in poems]


# ---- folds --------------------------------------------------------------------------------------
def group_folds(labels: list[int], groups: list, k: int, seed: int) -> list[int]:
    """A fold number per item: whole groups go to one fold, groups of the same label make-up are
    dealt round-robin after a seeded shuffle (so folds are balanced)."""
    comp: dict = {}
    for y, g in zip(labels, groups, strict=True):
        comp.setdefault(g, []).append(y)
    by_kind: dict = {}
    for g, ys in comp.items():
        by_kind.setdefault(tuple(sorted(ys)), []).append(g)
    rng = random.Random(seed)
    fold_of, offset = {}, 0
    for kind in sorted(by_kind):
        gs = sorted(by_kind[kind], key=str)
        rng.shuffle(gs)
        for i, g in enumerate(gs):
            fold_of[g] = (offset + i) % k
        offset += len(gs)
    return [fold_of[g] for g in groups]


# ---- classifier (a): character n-grams + logistic regression ------------------------------------
def char_ngrams(text: str, n_max: int = 3) -> Counter:
    return Counter(text[i : i + n] for n in range(1, n_max + 1) for i in range(len(text) - n + 1))


class NgramLogReg:
    """TF-IDF (sublinear tf, smoothed idf, L2 rows) of character 1..n-grams, logistic regression with
    an L2 penalty (`c` as scikit-learn's C), fitted by full-batch L-BFGS. Deterministic."""

    def __init__(self, n_max: int = 3, c: float = 1.0, min_df: int = 1):
        self.n_max, self.c, self.min_df = n_max, c, min_df

    def _matrix(self, texts: list[str]) -> torch.Tensor:
        x = torch.zeros(len(texts), len(self.vocab))
        for i, t in enumerate(texts):
            for g, cnt in char_ngrams(t, self.n_max).items():
                j = self.vocab.get(g)
                if j is not None:
                    x[i, j] = 1.0 + math.log(cnt)
        x *= self.idf
        return F.normalize(x, dim=1)

    def fit(self, texts: list[str], labels: list[int]) -> NgramLogReg:
        grams = [char_ngrams(t, self.n_max) for t in texts]
        df = Counter(g for gs in grams for g in gs)
        self.vocab = {g: i for i, g in enumerate(sorted(g for g, d in df.items() if d >= self.min_df))}
        n = len(texts)
        self.idf = torch.tensor([math.log((1 + n) / (1 + df[g])) + 1 for g in self.vocab])
        x, y = self._matrix(texts), torch.tensor(labels, dtype=torch.float32)
        self.w = torch.zeros(x.shape[1], requires_grad=True)
        self.b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([self.w, self.b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(x @ self.w + self.b, y, reduction="sum") \
                + 0.5 / self.c * (self.w ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    @torch.no_grad()
    def predict_proba(self, texts: list[str]) -> list[float]:
        return torch.sigmoid(self._matrix(texts) @ self.w + self.b).tolist()

    @torch.no_grad()
    def top_features(self, k: int = 15) -> dict[str, list[tuple[str, float]]]:
        """The n-grams that most say label 1 and label 0 (largest and smallest weights)."""
        names = list(self.vocab)
        order = torch.argsort(self.w)
        return {"1": [(names[i], round(self.w[i].item(), 3)) for i in order.flip(0)[:k].tolist()],
                "0": [(names[i], round(self.w[i].item(), 3)) for i in order[:k].tolist()]}


# ---- classifier (b): a tiny transformer encoder, trained from scratch ---------------------------
@dataclass
class TinyEncoderConfig:
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    intermediate: int = 128
    max_len: int = 160
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1


class TinyEncoderClassifier:
    """`BertForSequenceClassification` over characters ([CLS] + body), from scratch."""

    PAD, UNK, CLS = 0, 1, 2

    def __init__(self, cfg: TinyEncoderConfig | None = None, seed: int = 0):
        self.cfg, self.seed = cfg or TinyEncoderConfig(), seed

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        T = min(self.cfg.max_len, 1 + max(len(t) for t in texts))
        x = torch.full((len(texts), T), self.PAD, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.CLS] + [self.chars.get(c, self.UNK) for c in t][: T - 1]
            x[i, : len(ids)] = torch.tensor(ids)
        return x, (x != self.PAD).long()

    def fit(self, texts: list[str], labels: list[int]) -> TinyEncoderClassifier:
        from transformers import BertConfig, BertForSequenceClassification

        c = self.cfg
        self.chars = {ch: i + 3 for i, ch in enumerate(sorted({ch for t in texts for ch in t}))}
        torch.manual_seed(self.seed)
        bc = BertConfig(vocab_size=len(self.chars) + 3, hidden_size=c.hidden, num_hidden_layers=c.layers,
                        num_attention_heads=c.heads, intermediate_size=c.intermediate,
                        max_position_embeddings=c.max_len, hidden_dropout_prob=c.dropout,
                        attention_probs_dropout_prob=c.dropout, num_labels=2, pad_token_id=self.PAD)
        self.model = BertForSequenceClassification(bc)
        opt = torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        y = torch.tensor(labels)
        g = torch.Generator().manual_seed(self.seed)
        steps = c.epochs * math.ceil(len(texts) / c.batch_size)
        warm = min(20, steps // 10 + 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(0.05, 1 - s / steps))
        self.model.train()
        for _ in range(c.epochs):
            perm = torch.randperm(len(texts), generator=g).tolist()
            for s in range(0, len(perm), c.batch_size):
                idx = perm[s : s + c.batch_size]
                x, m = self._encode([texts[i] for i in idx])
                loss = self.model(input_ids=x, attention_mask=m, labels=y[idx]).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                sched.step()
        self.model.eval()
        return self

    @torch.no_grad()
    def predict_proba(self, texts: list[str]) -> list[float]:
        out = []
        for s in range(0, len(texts), 64):
            x, m = self._encode(texts[s : s + 64])
            out += torch.softmax(self.model(input_ids=x, attention_mask=m).logits, -1)[:, 1].tolist()
        return out


CLASSIFIERS: dict[str, Callable[[int], Classifier]] = {"ngram": lambda seed: NgramLogReg(), "transformer": lambda seed: TinyEncoderClassifier(seed=seed)}


def _acc(items: list[tuple[int, float]]) -> float:
    return sum((p >= 0.5) == bool(y) for y, p in items) / len(items) if items else float("nan")


def _auc(items: list[tuple[int, float]]) -> float:
    return roc_auc([y for y, _ in items], [p for _, p in items])


class Classifier(Protocol):
    def fit(self, texts: list[str], labels: list[int]) -> Classifier: ...
    def predict_proba(self, texts: list[str]) -> list[float]: ...


def cross_validate(texts: list[str], labels: list[int], groups: list, make: Callable[[int], Classifier], folds: int = 5, seed: int = 0,
                   n_boot: int = 2000) -> dict:
    """Pooled out-of-fold P(label 1) → accuracy and ROC-AUC with group-bootstrap 95% intervals."""
    fold = group_folds(labels, groups, folds, seed)
    probs = [0.0] * len(texts)
    for k in range(folds):
        tr = [i for i, f in enumerate(fold) if f != k]
        te = [i for i, f in enumerate(fold) if f == k]
        if not te:
            continue
        clf = make(seed + k).fit([texts[i] for i in tr], [labels[i] for i in tr])
        for i, p in zip(te, clf.predict_proba([texts[i] for i in te]), strict=True):
            probs[i] = p
    items = list(zip(labels, probs, strict=True))
    acc = bootstrap_groups(_acc, items, groups, n_boot, seed)
    auc = bootstrap_groups(_auc, items, groups, n_boot, seed)
    return {"accuracy": acc[0], "accuracy_ci": [acc[1], acc[2]], "auc": auc[0], "auc_ci": [auc[1], auc[2]],
            "folds": folds, "n": len(texts), "probs": probs}


# ---- likelihood under an independent model ------------------------------------------------------
class NgramLM:
    """A character trigram LM (interpolated: λ₃·P₃ + λ₂·P₂ + λ₁·P₁, add-one unigram; a missing context
    hands its weight down), over normalised bodies with a start marker. Counting is numpy, so the
    whole train split (17M characters) takes seconds."""

    BOS = "\x02"

    def __init__(self, lambdas: tuple[float, float, float] = (0.5, 0.35, 0.15)):
        self.lambdas = lambdas

    def fit(self, texts: list[str]) -> NgramLM:
        chars = sorted({c for t in texts for c in t} | {self.BOS})
        self.index = {c: i for i, c in enumerate(chars)}
        V = self.V = len(chars) + 1  # + an unknown id
        seqs = [np.array([self.index[self.BOS]] * 2 + [self.index[c] for c in t], dtype=np.int64) for t in texts]
        s = np.concatenate(seqs)
        starts = np.cumsum([0] + [len(q) for q in seqs[:-1]])
        valid = np.ones(len(s), dtype=bool)
        valid[starts] = valid[starts + 1] = False  # positions 0, 1 of each poem are markers, not targets
        pos = np.nonzero(valid)[0]
        a, b, c = s[pos - 2], s[pos - 1], s[pos]
        self.uni = np.bincount(c, minlength=V).astype(np.float64)
        self.N = float(self.uni.sum())
        self.bi_keys, self.bi_counts = np.unique(b * V + c, return_counts=True)
        self.ctx1_keys, self.ctx1_counts = np.unique(b, return_counts=True)
        self.tri_keys, self.tri_counts = np.unique((a * V + b) * V + c, return_counts=True)
        self.ctx2_keys, self.ctx2_counts = np.unique(a * V + b, return_counts=True)
        return self

    @staticmethod
    def _lookup(keys: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(keys, q), 0, len(keys) - 1)
        return np.where(keys[i] == q, counts[i], 0).astype(np.float64)

    def char_logprobs(self, text: str) -> np.ndarray:
        """ln P of each character of `text` (a normalised body) given the two before it."""
        V, unk = self.V, self.V - 1
        ids = np.array([self.index[self.BOS]] * 2 + [self.index.get(ch, unk) for ch in text], dtype=np.int64)
        a, b, c = ids[:-2], ids[1:-1], ids[2:]
        p1 = (self.uni[c] + 1) / (self.N + V)
        c2, n1 = self._lookup(self.bi_keys, self.bi_counts, b * V + c), self._lookup(self.ctx1_keys, self.ctx1_counts, b)
        c3 = self._lookup(self.tri_keys, self.tri_counts, (a * V + b) * V + c)
        n2 = self._lookup(self.ctx2_keys, self.ctx2_counts, a * V + b)
        l3, l2, l1 = self.lambdas
        w3 = np.where(n2 > 0, l3, 0.0)
        w2 = np.where(n1 > 0, l2, 0.0)
        w1 = 1.0 - w3 - w2
        p = w3 * c3 / np.maximum(n2, 1) + w2 * c2 / np.maximum(n1, 1) + w1 * p1
        return np.log(p)

    def mean_logprob(self, text: str, skip: str = SEP) -> float:
        """Mean ln P per character, the line separators conditioned on but not scored."""
        lp = self.char_logprobs(text)
        keep = np.array([ch not in skip for ch in text])
        return float(lp[keep].mean()) if keep.any() else float("nan")


@torch.inference_mode()
def base_model_logprobs(model: torch.nn.Module, tokenizer: Any, poems: list[dict], batch_size: int = 32) -> list[float]:
    """Mean ln P per character (punctuation and <eos> conditioned on, not scored) of each poem's
    `canonical_text` under a causal LM, given only its form and 词牌 (no title)."""
    from core.prompt import header

    vocab = tokenizer.get_vocab()
    skip = {vocab[c] for c in "，。" if c in vocab}
    out = []
    model.eval()
    for s in range(0, len(poems), batch_size):
        rows = []
        for p in poems[s : s + batch_size]:
            h = tokenizer(header(p.get("form") or "七绝", cipai=p.get("cipai", "") if p.get("form") == "词" else ""),
                          add_special_tokens=False)["input_ids"]
            b = tokenizer(canonical_text(p["text"]), add_special_tokens=False)["input_ids"]
            rows.append((h, b))
        T = min(256, max(len(h) + len(b) for h, b in rows))
        x = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long)
        for i, (h, b) in enumerate(rows):
            seq = (h + b)[:T]
            x[i, : len(seq)] = torch.tensor(seq)
        lp = torch.log_softmax(model(input_ids=x, attention_mask=(x != tokenizer.pad_token_id).long()).logits.float(), -1)
        for i, (h, b) in enumerate(rows):
            n = min(len(b), T - len(h))
            tgt = torch.tensor(b[:n])
            vals = lp[i, len(h) - 1 : len(h) - 1 + n].gather(1, tgt[:, None])[:, 0]
            keep = torch.tensor([t not in skip for t in b[:n]])
            out.append(vals[keep].mean().item() if keep.any() else float("nan"))
    return out


def likelihood_gap(ll_a: list[float], ll_b: list[float], groups: list, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean per-character log-likelihood of each set (bootstrap 95% CIs), the gap B − A (group
    bootstrap), and the ROC-AUC of the likelihood alone as a detector of B."""
    items = [(0, v) for v in ll_a] + [(1, v) for v in ll_b]

    def gap(xs):
        a = [v for y, v in xs if y == 0]
        b = [v for y, v in xs if y == 1]
        return statistics.fmean(b) - statistics.fmean(a) if a and b else float("nan")

    def mean_of(label):
        return lambda xs: statistics.fmean([v for y, v in xs if y == label]) if any(y == label for y, _ in xs) \
            else float("nan")

    ga, gb = groups[: len(ll_a)], groups[len(ll_a) :]
    ma = bootstrap_groups(mean_of(0), items[: len(ll_a)], ga, n_boot, seed)
    mb = bootstrap_groups(mean_of(1), items[len(ll_a) :], gb, n_boot, seed)
    g = bootstrap_groups(gap, items, groups, n_boot, seed)
    auc = bootstrap_groups(_auc, items, groups, n_boot, seed)
    return {"mean_a": ma[0], "mean_a_ci": [ma[1], ma[2]], "mean_b": mb[0], "mean_b_ci": [mb[1], mb[2]],
            "gap": g[0], "gap_ci": [g[1], g[2]], "auc": auc[0], "auc_ci": [auc[1], auc[2]]}


# ---- the test -----------------------------------------------------------------------------------
def two_sample_test(a: list, b: list, *, groups_a: list | None = None, groups_b: list | None = None,
                    classifiers: tuple[str, ...] = ("ngram", "transformer"), folds: int = 5, seed: int = 0,
                    lm: NgramLM | None = None, base_model: torch.nn.Module | None = None, tokenizer: Any = None,
                    n_boot: int = 2000, names: tuple[str, str] = ("A", "B")) -> dict:
    """Compare two lists of poems (str or {"text", "form", "cipai"} dicts); B is the positive class.

    `groups_*`: pair ids (a real poem and the poem generated for its request share one); default each
    poem its own group. `lm`: an `NgramLM` for the likelihood gap; `base_model` + `tokenizer`: also
    the gap under that causal LM."""
    if len(a) < folds or len(b) < folds:
        raise ValueError(f"need at least {folds} poems on each side (got {len(a)} and {len(b)})")
    ta, tb = [normalize_body(t) for t in _texts(a)], [normalize_body(t) for t in _texts(b)]
    ga = list(groups_a) if groups_a is not None else [f"a{i}" for i in range(len(a))]
    gb = list(groups_b) if groups_b is not None else [f"b{i}" for i in range(len(b))]
    texts, labels, groups = ta + tb, [0] * len(ta) + [1] * len(tb), ga + gb
    res: dict = {"names": list(names), "n": [len(a), len(b)], "folds": folds, "seed": seed, "classifiers": {}}
    for name in classifiers:
        res["classifiers"][name] = cross_validate(texts, labels, groups, CLASSIFIERS[name], folds, seed, n_boot)
    if "ngram" in classifiers:  # what gives a set away: the n-gram model refitted on everything
        top = NgramLogReg().fit(texts, labels).top_features()
        res["telltale_ngrams"] = {names[1]: top["1"], names[0]: top["0"]}
    res["likelihood"] = {}
    if lm is not None:
        ll = [lm.mean_logprob(t) for t in texts]
        res["likelihood"]["char trigram LM (train split)"] = likelihood_gap(ll[: len(ta)], ll[len(ta) :], groups, n_boot, seed)
    if base_model is not None and tokenizer is not None:
        dicts = [p if isinstance(p, dict) else {"text": p} for p in list(a) + list(b)]
        ll = base_model_logprobs(base_model, tokenizer, dicts)
        res["likelihood"]["base model"] = likelihood_gap(ll[: len(a)], ll[len(a) :], groups, n_boot, seed)
    return res


def train_lm(dataset_dir: Path, split: str = "train") -> NgramLM:
    from training.corpus import load_split

    return NgramLM().fit([normalize_body(r["text"]) for r in load_split(dataset_dir, split)])


# ---- requests and generation --------------------------------------------------------------------
def two_sample_requests(test_rows: list[dict], per_form: int = 40, seed: int = 0) -> list[tuple[Any, dict]]:
    """`training.evaluate.eval_requests`, with the first-line requests turned into title requests:
    a shared first line would make a pair share a line. (request, real poem) pairs."""
    from training.evaluate import eval_requests

    out = []
    for req, row in eval_requests(test_rows, per_form, seed):
        if req.first_line:
            title = row["title"] if row["title"] != row["cipai"] else ""
            req = replace(req, first_line="", title=title[:20])
        out.append((req, row))
    return out


def generate_pairs(poet: Any, pairs: list[tuple[Any, dict]], progress: bool = True) -> tuple[list[dict], list[dict]]:
    """(real, generated) poem dicts for the requests the poet can serve; both carry the pair's group."""
    from tqdm import tqdm

    from core.types import ShirenError

    real, gen = [], []
    for req, row in tqdm(pairs, desc="generate", disable=not progress, unit="poem"):
        try:
            poem = poet.write(req)[0]
        except ShirenError:  # refused, or every draft hit a dead end: this request is not served
            continue
        meta = {"form": req.form, "cipai": req.cipai, "group": row["id"]}
        real.append({"text": row["text"], **meta, "id": row["id"], "title": row["title"]})
        gen.append({"text": poem.text, **meta, "request": req.to_dict(), "model_version": poet.version})
    return real, gen


def write_jsonl(path: Path, poems: list[dict]) -> None:
    from core.atomic import write_text

    write_text(Path(path), "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in poems))


# ---- output -------------------------------------------------------------------------------------
def slim(res: dict) -> dict:
    """The result without per-poem probabilities."""
    return {**res, "classifiers": {k: {kk: vv for kk, vv in v.items() if kk != "probs"}
                                   for k, v in res["classifiers"].items()}}


def to_markdown(res: dict) -> str:
    a, b = res["names"]
    lines = [f"{res['n'][0]} {a} vs {res['n'][1]} {b}; {res['folds']}-fold grouped cross-validation, seed {res['seed']}; "
             "95% group-bootstrap intervals", "",
             "| classifier | held-out accuracy | ROC-AUC |", "|---|---:|---:|"]
    for name, m in res["classifiers"].items():
        lines.append(f"| {name} | {m['accuracy']:.3f} [{m['accuracy_ci'][0]:.3f}, {m['accuracy_ci'][1]:.3f}] "
                     f"| {m['auc']:.3f} [{m['auc_ci'][0]:.3f}, {m['auc_ci'][1]:.3f}] |")
    if res.get("likelihood"):
        lines += ["", f"| scorer | mean ln P/char, {a} | mean ln P/char, {b} | gap ({b} − {a}) | AUC of ln P alone |",
                  "|---|---:|---:|---:|---:|"]
        for name, m in res["likelihood"].items():
            lines.append(f"| {name} | {m['mean_a']:.3f} [{m['mean_a_ci'][0]:.3f}, {m['mean_a_ci'][1]:.3f}] "
                         f"| {m['mean_b']:.3f} [{m['mean_b_ci'][0]:.3f}, {m['mean_b_ci'][1]:.3f}] "
                         f"| {m['gap']:+.3f} [{m['gap_ci'][0]:+.3f}, {m['gap_ci'][1]:+.3f}] "
                         f"| {m['auc']:.3f} [{m['auc_ci'][0]:.3f}, {m['auc_ci'][1]:.3f}] |")
    if res.get("telltale_ngrams"):
        lines += ["", "Telltale character n-grams (logistic-regression weights, refitted on all poems):", ""]
        for side, feats in res["telltale_ngrams"].items():
            lines.append(f"- {side}: " + " ".join(f"「{g}」{w:+.2f}" for g, w in feats))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training.two_sample", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare", help="two-sample test of two JSONL files of poems")
    c.add_argument("--a", type=Path, required=True, help="set A (label 0), e.g. real poems")
    c.add_argument("--b", type=Path, required=True, help="set B (label 1), e.g. generated poems")
    c.add_argument("--names", default="A,B", help="display names, comma-separated")
    c.add_argument("--classifiers", default="ngram,transformer")
    c.add_argument("--folds", type=int, default=5)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--lm", action="store_true", help="also the likelihood gap under a char trigram LM of the train split")
    c.add_argument("--base-model", action="store_true", help="also the likelihood gap under the base model")
    c.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    a, b = load_poems(args.a), load_poems(args.b)
    ga = [p.get("group", f"a{i}") for i, p in enumerate(a)]
    gb = [p.get("group", f"b{i}") for i, p in enumerate(b)]
    lm = model = tok = None
    if args.lm:
        from core import paths

        lm = train_lm(paths.dataset_dir())
    if args.base_model:
        from transformers import AutoTokenizer

        from core import paths
        from core.weights import load_llama

        model = load_llama(paths.model_dir()).hf_model()
        tok = AutoTokenizer.from_pretrained(str(paths.model_dir()))
    res = two_sample_test(a, b, groups_a=ga, groups_b=gb, classifiers=tuple(args.classifiers.split(",")),
                          folds=args.folds, seed=args.seed, lm=lm, base_model=model, tokenizer=tok,
                          names=tuple(args.names.split(",")[:2]))
    print(json.dumps(slim(res), ensure_ascii=False, indent=1) if args.json else to_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
