"""The mask-restricted infill: `core.infill` replays the engine's rules over finished poems; it must
agree with the decoder (every written poem is legal) and with the reference rules of core.generate."""

from __future__ import annotations

import random

import pytest
import torch

from core.engine import plan_tensors
from core.generate import RowState, row_mask, update_row
from core.infill import RuleReplay, allowed_at, editable_slots, replay
from core.plan import build_plan
from core.testing import tiny_poet
from core.types import PoemRequest

REQS = [
    PoemRequest(form="七绝", seed=1),
    PoemRequest(form="五律", acrostic="春夏秋冬", seed=2),
    PoemRequest(form="七律", keywords=("明月",), seed=3),
    PoemRequest(form="五绝", first_line="春风拂柳绿", seed=4),
    PoemRequest(form="词", cipai="浣溪沙", seed=5),
    PoemRequest(form="词", cipai="如梦令", seed=6),  # 叠句
]


@pytest.fixture(scope="module")
def poet():
    p = tiny_poet(seed=0)
    yield p
    p.close()


def decoded(poet, req):
    """(plan, pt, the rows the engine wrote) for a request."""
    req, job = poet.make_job(req)
    poet.engine.run([job])
    return job.plan, job.pt, [ids for ids, r in poet.engine.results(job) if not r.failed]


def reference_legal(vi, plan, ids: list[int]) -> bool:
    """The poem walked through core.generate's row_mask / update_row (the reference rules)."""
    kind = "词" if plan.form == "词" else "近体"
    fixed = {vi.char_id(s.fixed) for s in plan.slots if s.fixed}
    st = RowState(set(plan.templates), set(plan.groups) or set(vi.classes[kind]), set(fixed))
    for s, slot in enumerate(plan.slots):
        if slot.kind == "punct":
            continue
        t = ids[s]
        if slot.fixed or slot.copy_of >= 0:
            want = vi.char_id(slot.fixed) if slot.fixed else ids[slot.copy_of]
            if t != want:
                return False
        elif t in st.used or not bool(row_mask(vi, kind, slot, st)[t]):
            return False
        update_row(vi, kind, slot, st, t)
        if st.failed:
            return False
    return True


@pytest.mark.parametrize("req", REQS, ids=lambda r: f"{r.form}{r.cipai}-{r.seed}")
def test_every_decoded_poem_replays_legal(poet, req):
    plan, pt, rows = decoded(poet, req)
    rules = RuleReplay(poet.engine.ev)
    assert replay(rules, plan, pt, torch.tensor(rows)).all()


@pytest.mark.parametrize("req", REQS, ids=lambda r: f"{r.form}{r.cipai}-{r.seed}")
def test_allowed_set_equals_the_reference_rules(poet, req):
    """At three random editable slots: the replayed allowed set over a random sample of characters is
    exactly the set the reference rules accept, given every other character of the poem."""
    plan, pt, rows = decoded(poet, req)
    rules, vi, rng = RuleReplay(poet.engine.ev), poet.vi, random.Random(req.seed)
    ids = rows[0]
    content = vi.content.nonzero().flatten().tolist()
    for slot in rng.sample(editable_slots(pt), 3):
        sample = sorted(set(rng.sample(content, 250)) | {ids[slot]})
        got = set(allowed_at(rules, plan, pt, ids, slot, torch.tensor(sample)).tolist())
        want = {c for c in sample if reference_legal(vi, plan, ids[:slot] + [c] + ids[slot + 1:])}
        assert got == want
        assert ids[slot] in got
        assert not (got & (set(ids) - {ids[slot]})), "no character twice"


def test_last_slot_allowed_set_is_the_decoders_mask(poet):
    """With nothing after it, the allowed set at the last free slot is the decoder's own mask there."""
    req = PoemRequest(form="七绝", seed=9)
    plan, pt, rows = decoded(poet, req)
    vi, ids = poet.vi, rows[0]
    last = editable_slots(pt)[-1]
    kind = "近体"
    st = RowState(set(plan.templates), set(plan.groups) or set(vi.classes[kind]), set())
    for s, slot in enumerate(plan.slots[:last]):
        if slot.kind == "char":
            update_row(vi, kind, slot, st, ids[s])
    st.used = {ids[s] for s in range(len(ids)) if s != last and plan.slots[s].kind == "char"}
    want = set(row_mask(vi, kind, plan.slots[last], st).nonzero().flatten().tolist())
    got = set(allowed_at(RuleReplay(poet.engine.ev), plan, pt, ids, last).tolist())
    assert got == want


def test_fixed_and_punctuation_slots_are_not_editable(poet):
    req = PoemRequest(form="五律", acrostic="春夏秋冬", seed=2)
    plan = build_plan(poet.validate(req), random.Random(2))
    pt = plan_tensors(plan, poet.vi)
    heads = [i for i, s in enumerate(plan.slots) if s.fixed]
    assert heads and not set(heads) & set(editable_slots(pt))
    assert all(plan.slots[i].kind == "char" for i in editable_slots(pt))
