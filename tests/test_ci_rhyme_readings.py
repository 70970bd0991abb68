"""A 词 rhyme rhymes by the reading of its position's tone.

祖 reads 平 (六麻, 词林正韵 第十部) and 仄 (七麌, 第四部). In a 仄 rhyme position it can only rhyme in
第四部; counting its 平 reading's 部 there would let it "rhyme" in 第十部 while being read 仄. The
decoder (reference rules, the engine's torch rules and the C kernel) and the 格律 checker all agree.
The decoder reads common readings only, and 祖's 平 reading is rare (core.gelv.usage), so its masks are
tested on 征: 平 (八庚, 第十一部) and 仄 (四纸 as 徵, 第三部), both readings common.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from core.engine import Engine
from core.gelv import analyze
from core.gelv.table import cilin_bu
from core.gelv.usage import common_cilin_bu
from core.generate import RowState, row_mask
from core.plan import Slot
from core.testing import tiny_poet

CH = "祖"
CH_MASK = "征"


@pytest.fixture(scope="module")
def poet():
    p = tiny_poet(seed=0)
    yield p
    p.close()


def test_cilin_bu_by_tone():
    assert cilin_bu(CH, "平") == {10} and cilin_bu(CH, "仄") == {4} and cilin_bu(CH) == {4, 10}
    assert cilin_bu(CH, "中") == cilin_bu(CH)
    assert common_cilin_bu(CH, "平") == frozenset()  # 祖 read 平 is rare in real verse
    assert common_cilin_bu(CH_MASK, "平") == {11} and common_cilin_bu(CH_MASK, "仄") == {3}


@pytest.mark.parametrize(("tone", "bu", "allowed"), [("仄", "11", False), ("仄", "3", True),
                                                     ("平", "11", True), ("平", "3", False)])
def test_reference_mask(poet, tone, bu, allowed):
    vi = poet.vi
    slot = Slot(kind="char", marks=(tone,), rhyme=(True,))
    m = row_mask(vi, "词", slot, RowState(templates={0}, groups={bu}, used=set()))
    assert bool(m[vi.char_id(CH_MASK)]) is allowed


def _job(ev, tone: str, bu: str):
    marks = torch.zeros((1, 1, 3), dtype=torch.bool)
    marks[0, 0, {"平": 0, "仄": 1}[tone]] = True
    groups = torch.zeros((1, ev.n_classes), dtype=torch.bool)
    groups[0, ev.offset["词"] + ev.names["词"].index(bu)] = True
    job = SimpleNamespace(slot=0, pt=SimpleNamespace(marks=marks, rhyme=torch.ones((1, 1), dtype=torch.bool),
                                                     fixed_chars=torch.zeros(0, dtype=torch.long),
                                                     forced=torch.tensor([-1])))
    job.alive = torch.ones((1, 1), dtype=torch.bool)
    job.groups = groups
    job.used = torch.zeros((1, ev.vi.size), dtype=torch.bool)
    job.failed = torch.zeros(1, dtype=torch.bool)
    return job


@pytest.mark.parametrize("rules", ["c", "torch"])
@pytest.mark.parametrize(("tone", "bu", "allowed"), [("仄", "11", False), ("仄", "3", True),
                                                     ("平", "11", True), ("平", "3", False)])
def test_engine_mask_and_update(poet, rules, tone, bu, allowed):
    eng, ev = poet.engine, poet.engine.ev
    saved = ev.c
    if rules == "c" and saved is None:
        pytest.skip("no C kernel on this machine")
    ev.c = saved if rules == "c" else None
    try:
        job = _job(ev, tone, bu)
        tok = ev.vi.char_id(CH_MASK)
        assert bool(Engine._mask(eng, job)[0, tok]) is allowed
        # Placing it anyway (as a user-fixed char would be): the row fails exactly when it does not rhyme.
        Engine._update(eng, job, torch.tensor([tok]))
        assert bool(job.failed[0]) is not allowed
    finally:
        ev.c = saved


def test_checker_reads_a_ze_rhyme_by_its_ze_reading():
    # 如梦令 (仄韵) rhyming in 第十部 仄 (夜 马 下 也): 谢 rhymes; 祖 only through its 平 reading (六麻,
    # 第十部), but it stands in a 仄 rhyme position, where it reads 七麌 (第四部): it does not rhyme.
    def ci(last: str):
        return analyze(f"昨夜雨疏风夜，浓睡不消残马。试问卷帘人，却道海棠依下。知也，知也，应是绿肥红{last}。",
                       form=None, cipai="如梦令")

    good, bad = ci("谢"), ci(CH)
    assert good.rhyme_ok and good.rhyme_group == "第十部"
    last = bad.lines[-1].chars[-1]
    assert last.char == CH and last.is_rhyme_pos
    assert not bad.rhyme_ok and "不押韵" in last.violations


@pytest.mark.parametrize("kind", ["词", "近体"])
def test_reference_and_engine_agree_when_a_rhyming_template_allows_either_tone(poet, kind):
    """Rhyming templates marked 平 and 中 at one slot: a 仄 rhyme is fine under the 中 one, so both the
    reference rules and the engine (C and torch) allow either tone there, by the matching reading."""
    eng, ev, vi = poet.engine, poet.engine.ev, poet.vi
    bu = ev.names[kind][0]
    slot = Slot(kind="char", marks=("平", "中"), rhyme=(True, True))
    ref = row_mask(vi, kind, slot, RowState(templates={0, 1}, groups={bu}, used=set()))
    job = _job(ev, "平", "10")
    job.pt.marks = torch.tensor([[[True, False, False], [False, False, True]]])  # 平, 中
    job.pt.rhyme = torch.ones((1, 2), dtype=torch.bool)
    job.alive = torch.ones((1, 2), dtype=torch.bool)
    job.groups.zero_()
    job.groups[0, ev.offset[kind] + ev.names[kind].index(bu)] = True
    saved = ev.c
    try:
        for c in ([saved] if saved is not None else []) + [None]:
            ev.c = c
            state = (job.alive.clone(), job.groups.clone(), job.used.clone(), job.failed.clone())
            m = Engine._mask(eng, job)[0]
            job.alive, job.groups, job.used, job.failed = state
            assert torch.equal(m, ref), "C" if c is not None else "torch"
    finally:
        ev.c = saved
    if kind == "词":  # 词 classes hold 仄 readings too: some 仄-only characters are allowed
        assert bool((ref & vi.ze & ~vi.ping).any())
    else:  # 近体 classes are 平 groups: only characters with a 平 reading can be in one
        assert not bool((ref & vi.ze & ~vi.ping).any()) and bool(ref.any())
