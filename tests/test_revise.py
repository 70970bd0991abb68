"""Revision on request: every line position, single characters, fixed characters refused, guarantees kept."""

from __future__ import annotations

import random

import pytest
from test_generate import assert_guarantees

from core.revise import RevisionTarget, clauses
from core.testing import tiny_poet, tiny_poet_with_critic
from core.types import PoemRequest, RequestError

REQS = [
    PoemRequest(form="五绝", seed=1),
    PoemRequest(form="七绝", title="春夜", seed=2),
    PoemRequest(form="五律", acrostic="春夏秋冬", seed=3),
    PoemRequest(form="七律", keywords=("明月",), seed=4),
    PoemRequest(form="五绝", first_line="春风拂柳绿", seed=5),
    PoemRequest(form="词", cipai="浣溪沙", seed=6),
    PoemRequest(form="词", cipai="如梦令", seed=7),
]


@pytest.fixture(scope="module", params=["critic", "plain"])
def poet(request):
    p = tiny_poet_with_critic(seed=0) if request.param == "critic" else tiny_poet(seed=0)
    yield p
    p.close()


def _refusal(req, text, line) -> str | None:
    """Why this line cannot be rewritten, or None."""
    cl = clauses(text)
    if req.first_line and line == 1:
        return "first line you gave"
    if req.form == "词" and req.cipai == "如梦令" and line == 6 and cl[5] == cl[4]:
        return "叠句"
    return None


@pytest.mark.parametrize("req", REQS, ids=lambda r: f"{r.form}{r.cipai}-{r.seed}")
def test_every_line_position(poet, req):
    """Each line rewritten in turn: only that line changes (a 叠句 copy follows its source), every
    guarantee of the request holds, and lines the request fixed are refused with the reason."""
    poem = poet.write(req)[0]
    norm = poet.validate(req)
    old = clauses(poem.text)
    for line in range(1, len(old) + 1):
        why = _refusal(req, poem.text, line)
        if why:
            with pytest.raises(RequestError, match=why):
                poet.revise(req, poem.text, RevisionTarget(line=line), seed=line)
            continue
        new = poet.revise(req, poem.text, RevisionTarget(line=line), seed=line)
        assert_guarantees(norm, new.text)
        got = clauses(new.text)
        changed = {i + 1 for i, (a, b) in enumerate(zip(old, got, strict=True)) if a != b}
        follows = {line + 1} if req.cipai == "如梦令" and line == 5 else set()
        assert changed and changed <= {line} | follows, (line, old, got)
        if req.acrostic and line <= len(req.acrostic):
            assert got[line - 1][0] == req.acrostic[line - 1]
        assert new.scores["revised"] == {"line": line}
        assert new.scores["format"] and new.scores["rhyme"] and new.scores["tone_relaxed_common"]


def test_random_character_revisions_keep_the_guarantees(poet):
    rng = random.Random(3)
    for _ in range(12):
        req = rng.choice(REQS)
        poem = poet.write(req)[0]
        body = poem.text.replace("\n", "")
        n_chars = sum(1 for c in body if c not in "，。？！；、")
        k = rng.randrange(1, n_chars + 1)
        try:
            new = poet.revise(req, poem.text, RevisionTarget(char=k), seed=k)
        except RequestError as e:
            assert "stays as it is" in str(e) or "叠句" in str(e) or "no other version" in str(e)
            continue
        assert_guarantees(poet.validate(req), new.text)
        diff = [i for i, (a, b) in enumerate(zip(body, new.text.replace("\n", ""), strict=True)) if a != b]
        assert 1 <= len(diff) <= 2  # the character (and its 叠句 copy)


def test_fixed_characters_are_refused_with_the_reason(poet):
    req = PoemRequest(form="五律", acrostic="春夏秋冬", seed=3)
    text = poet.write(req)[0].text
    with pytest.raises(RequestError, match="「春」 is an acrostic head"):
        poet.revise(req, text, RevisionTarget(char=1))
    req = PoemRequest(form="七律", keywords=("明月",), seed=4)
    text = poet.write(req)[0].text
    body = [c for c in text if c not in "，。\n"]
    k = body.index("明") + 1
    with pytest.raises(RequestError, match="keyword 「明月」"):
        poet.revise(req, text, RevisionTarget(char=k))
    with pytest.raises(RequestError, match="no line 9"):
        poet.revise(req, text, RevisionTarget(line=9))
    with pytest.raises(RequestError, match="which line"):
        RevisionTarget()


def test_text_of_another_shape_is_refused(poet):
    with pytest.raises(RequestError, match="not a 七绝"):
        poet.revise(PoemRequest(form="七绝"), "床前明月光，疑是地上霜。", RevisionTarget(line=1))
