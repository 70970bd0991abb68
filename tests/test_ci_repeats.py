"""叠句: 词牌 whose poems repeat the end of the clause before (如梦令's 「知否，知否」, 忆秦娥's
「秦楼月」 after 「…梦断秦楼月」), learnt from 全宋词 and kept by the decoder."""

from __future__ import annotations

import random

import pytest
from test_generate import assert_guarantees, clauses

from core.gelv import analyze, cipai_patterns
from core.plan import build_plan
from core.requests import normalize_request
from core.testing import tiny_poet
from core.types import PoemRequest


@pytest.fixture(scope="module")
def poet():
    p = tiny_poet(seed=0)
    yield p
    p.close()


def test_repeats_come_from_the_corpus():
    assert cipai_patterns("如梦令")[0].repeats == (5,)  # 153 of 153 poems of its main form
    assert cipai_patterns("忆秦娥")[0].repeats == (2, 7)
    assert cipai_patterns("潇湘神")[0].repeats == (1,)
    assert cipai_patterns("浣溪沙")[0].repeats == ()


def test_plan_marks_the_repeating_slots(poet):
    req = normalize_request(PoemRequest(form="词", cipai="如梦令", seed=1), poet.vi.vocab_chars)
    plan = build_plan(req, random.Random(0))
    chars = [i for i, s in enumerate(plan.slots) if s.kind == "char"]
    by_line = {}
    for i in chars:
        by_line.setdefault(plan.slots[i].line, []).append(i)
    if tuple(len(v) for v in by_line.values()) != (6, 6, 5, 6, 2, 2, 6):
        pytest.skip("seed picked a rarer variant")
    assert [plan.slots[i].copy_of for i in by_line[5]] == by_line[4]
    assert all(plan.slots[i].copy_of == -1 for ln, idx in by_line.items() if ln != 5 for i in idx)
    assert all(plan.slots[i].marks == ("中",) and plan.slots[i].rhyme == (False,) for i in by_line[5])


@pytest.mark.parametrize("req", [
    PoemRequest(form="词", cipai="如梦令", seed=1),
    PoemRequest(form="词", cipai="如梦令", title="夜雨", keywords=("海棠",), seed=2),
    PoemRequest(form="词", cipai="忆秦娥", seed=3),
    PoemRequest(form="词", cipai="潇湘神", first_line="斑竹枝", seed=4),
    PoemRequest(form="词", cipai="忆秦娥", n=3, seed=5),
], ids=lambda r: f"{r.cipai}-{r.seed}")
def test_repeats_hold_and_fast_equals_reference(poet, req):
    fast = poet.write(req)
    assert [p.text for p in fast] == [p.text for p in poet.write_reference(req)]
    norm = poet.validate(req)
    for p in fast:
        assert_guarantees(norm, p.text)  # includes: every 叠句 of the pattern repeats
        cl = clauses(p.text)
        pat = next(x for x in cipai_patterns(req.cipai) if x.lengths == tuple(len(c) for c in cl))
        assert analyze(p.text, cipai=req.cipai).rhyme_ok
        for i in pat.repeats:
            assert cl[i] == cl[i - 1][-len(cl[i]):]


def test_an_acrostic_head_inside_a_repeat_wins(poet):
    # 7 heads for 如梦令's 7 clauses: the 6th head is the user's, so that clause is written freely
    # (with its own tones and rhyme), and the other guarantees hold.
    req = PoemRequest(form="词", cipai="如梦令", acrostic="春夏秋冬风花雪", seed=6)
    for p in poet.write(req):
        cl = clauses(p.text)
        assert "".join(c[0] for c in cl) == "春夏秋冬风花雪"
        assert_guarantees(poet.validate(req), p.text)


def test_batched_with_others_same_poems(poet):
    reqs = [PoemRequest(form="词", cipai="如梦令", seed=11), PoemRequest(form="七绝", seed=12),
            PoemRequest(form="词", cipai="忆秦娥", seed=13)]
    alone = [[p.text for p in poet.write(r)] for r in reqs]
    poet.start_batcher()
    try:
        futures = [poet._batcher.submit(r) for r in reqs]
        assert [[p.text for p in f.result(60)] for f in futures] == alone
    finally:
        poet.close()
