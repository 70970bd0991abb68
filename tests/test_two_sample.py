"""The two-sample test: separable sets are told apart (AUC near 1), identical ones are not (near 0.5);
normalisation hides formatting; folds keep pairs together; the likelihood gap and AUC helpers."""

from __future__ import annotations

import random

import pytest

from core.testing import common_chars
from training.metrics import bootstrap_groups, roc_auc
from training.two_sample import (
    CLASSIFIERS,
    NgramLM,
    TinyEncoderClassifier,
    TinyEncoderConfig,
    canonical_text,
    group_folds,
    normalize_body,
    two_sample_test,
)

CHARS = common_chars(400)


def poems(pool: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    line = lambda: "".join(rng.choice(pool) for _ in range(5))  # noqa: E731
    return [f"{line()}，{line()}。\n{line()}，{line()}。" for _ in range(n)]


@pytest.fixture(autouse=True)
def _fast_encoder(monkeypatch):
    """A smaller, shorter-trained encoder: the same code path in a fraction of the time."""
    cfg = TinyEncoderConfig(hidden=32, layers=1, heads=2, intermediate=64, epochs=12, batch_size=8, lr=3e-3)
    monkeypatch.setitem(CLASSIFIERS, "transformer", lambda seed: TinyEncoderClassifier(cfg, seed=seed))


def test_separable_sets_are_told_apart():
    a, b = poems(CHARS[:200], 40, 1), poems(CHARS[200:], 40, 2)
    res = two_sample_test(a, b, n_boot=200)
    for name in ("ngram", "transformer"):
        m = res["classifiers"][name]
        assert m["auc"] > 0.95 and m["accuracy"] > 0.9, (name, m)
        assert m["auc_ci"][0] <= m["auc"] <= m["auc_ci"][1]


def test_identical_sources_are_not():
    a, b = poems(CHARS, 40, 3), poems(CHARS, 40, 4)
    res = two_sample_test(a, b, n_boot=200)
    for name in ("ngram", "transformer"):
        m = res["classifiers"][name]
        assert 0.3 < m["auc"] < 0.7, (name, m)
        assert m["auc_ci"][0] < 0.5 < m["auc_ci"][1]


def test_deterministic():
    a, b = poems(CHARS[:200], 12, 5), poems(CHARS[150:], 12, 6)
    r1 = two_sample_test(a, b, classifiers=("ngram",), n_boot=50)
    r2 = two_sample_test(a, b, classifiers=("ngram",), n_boot=50)
    assert r1["classifiers"]["ngram"]["probs"] == r2["classifiers"]["ngram"]["probs"]


def test_formatting_cannot_give_the_answer_away():
    """The same words with different punctuation, line breaks and spacing normalise to one string,
    so a set differing only in formatting is indistinguishable (AUC exactly 0.5)."""
    a = poems(CHARS, 20, 7)
    b = [t.replace("。\n", "！").replace("，", "、 ").replace("。", "？") for t in a]
    assert [normalize_body(t) for t in a] == [normalize_body(t) for t in b]
    res = two_sample_test(a, b, groups_a=list(range(20)), groups_b=list(range(20)), classifiers=("ngram",), n_boot=50)
    assert res["classifiers"]["ngram"]["auc"] == pytest.approx(0.5, abs=0.05)
    assert canonical_text("春风！\n明月？ 夜、长；") == "春风。明月。夜，长。"


def test_folds_keep_groups_together_and_balance():
    labels = [0] * 10 + [1] * 10
    groups = list(range(10)) * 2  # pair i: real i and generated i
    fold = group_folds(labels, groups, 5, seed=0)
    assert all(fold[i] == fold[i + 10] for i in range(10))
    assert sorted(fold.count(k) for k in range(5)) == [4] * 5
    unpaired = group_folds(labels, [f"x{i}" for i in range(20)], 5, seed=0)
    assert all(sum(1 for f, y in zip(unpaired, labels, strict=True) if f == k and y) == 2 for k in range(5))


def test_roc_auc_and_bootstrap():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([0, 1, 1], [0.3, 0.3, 0.9]) == pytest.approx(0.75)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    point, lo, hi = bootstrap_groups(mean, [1.0, 2.0, 3.0, 4.0], [0, 0, 1, 1], n_boot=200)
    assert point == 2.5 and 1.5 <= lo <= point <= hi <= 3.5


def test_ngram_lm_and_likelihood_gap():
    train = [normalize_body(t) for t in poems(CHARS[:100], 300, 8)]
    lm = NgramLM().fit(train)
    seen, unseen = normalize_body(poems(CHARS[:100], 1, 9)[0]), normalize_body(poems(CHARS[100:200], 1, 10)[0])
    assert lm.mean_logprob(seen) > lm.mean_logprob(unseen)
    a, b = poems(CHARS[:100], 20, 11), poems(CHARS[50:150], 20, 12)
    res = two_sample_test(a, b, classifiers=(), lm=lm, n_boot=100)
    gap = res["likelihood"]["char trigram LM (train split)"]
    assert gap["gap"] < 0 and gap["auc"] < 0.5  # B is less like the LM's training text
    assert gap["mean_a_ci"][0] <= gap["mean_a"] <= gap["mean_a_ci"][1]


def test_requests_and_pairs_with_a_tiny_poet():
    from core.testing import tiny_poet
    from training.two_sample import generate_pairs, two_sample_requests

    text5 = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
    text7 = "朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。"
    rows = [{"id": f"{form}{i}", "form": form, "title": f"题{i}", "cipai": "", "text": t}
            for form, t in (("五绝", text5), ("七绝", text7)) for i in range(5)]
    pairs = two_sample_requests(rows, per_form=5, seed=0)
    assert len(pairs) == 10 and not any(r.first_line for r, _ in pairs)
    assert any(r.acrostic for r, _ in pairs) and any(r.keywords for r, _ in pairs)
    real, gen = generate_pairs(tiny_poet(), pairs[:4], progress=False)
    assert [p["group"] for p in real] == [p["group"] for p in gen] == [row["id"] for _, row in pairs[:4]]
    assert all(g["form"] == r["form"] and g["text"] != r["text"] for g, r in zip(gen, real, strict=True))
