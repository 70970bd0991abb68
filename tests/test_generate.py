"""The poet's guarantees, checked by the 格律 engine on every output (tiny random model: nonsense
text, but the constraints must hold regardless of what the model prefers)."""

from __future__ import annotations

import random
import re

import pytest

from core.gelv import analyze, cipai_patterns
from core.testing import common_chars, tiny_poet
from core.types import PoemRequest, RequestError
from core.variants import normalise

LINES = {"五绝": (5, 4), "七绝": (7, 4), "五律": (5, 8), "七律": (7, 8)}


@pytest.fixture(scope="module")
def poet():
    p = tiny_poet(seed=0)
    yield p
    p.close()


def clauses(text: str) -> list[str]:
    return [c for c in re.split(r"[，。？！；、\n]+", text) if c]


def assert_common_readings(a, text: str) -> None:
    """The guarantee holds as a reader hears it: by common readings only, no variant forms, no rhyme
    character twice."""
    assert a.common_rhyme_ok, (text, a.common_verdict, a.findings)
    if a.is_jinti:
        assert a.common_tone_relaxed_ok, (text, a.common_verdict, a.findings)
    assert not a.rare_readings, (text, [r.message() for r in a.rare_readings])
    assert not a.variant_chars, (text, a.variant_chars)
    assert not a.repeated_rhymes, (text, a.repeated_rhymes)
    assert normalise(text) == text


def assert_guarantees(req: PoemRequest, text: str) -> None:
    cl = clauses(text)
    if req.form in LINES:
        chars, n = LINES[req.form]
        assert [len(c) for c in cl] == [chars] * n, text
        a = analyze(text, form=req.form)
        assert a.is_jinti and a.format_ok, text
        assert a.rhyme_ok, (text, a.findings)
        assert a.tone_relaxed_ok, (text, a.findings)
        assert_common_readings(a, text)
        # Punctuation: ， after odd lines, 。 after even lines.
        assert re.sub(r"[^，。]", "", text) == "，。" * (n // 2)
    repeats: list[int] = []
    if req.form not in LINES:
        pats = {p.lengths: p for p in cipai_patterns(req.cipai)}
        assert tuple(len(c) for c in cl) in pats, text
        a = analyze(text, cipai=req.cipai)
        assert a.rhyme_ok, (text, a.findings)
        assert_common_readings(a, text)
        # 叠句: the clauses the pattern repeats do repeat the end of the clause before (unless the
        # request fixed a char there: an acrostic head wins).
        heads = range(len(req.acrostic))
        repeats = [i for i in pats[tuple(len(c) for c in cl)].repeats if i not in heads]
        for i in repeats:
            assert cl[i] == cl[i - 1][-len(cl[i]):], (i, text)
    for i, ch in enumerate(req.acrostic):
        assert cl[i][0] == ch, (req.acrostic, text)
    for kw in req.keywords:
        assert kw in text.replace("\n", ""), (kw, text)
    if req.first_line:
        assert cl[0] == req.first_line
    # No character repeated except where the request itself fixed it.
    fixed = set(req.acrostic + req.first_line + "".join(req.keywords))
    body = [c for i, c_ in enumerate(cl) if i not in repeats for c in c_]
    assert all(body.count(c) == 1 for c in set(body) - fixed), text


@pytest.mark.parametrize(
    "req",
    [
        PoemRequest(form="五绝", seed=1),
        PoemRequest(form="七绝", title="春夜", seed=2),
        PoemRequest(form="五律", keywords=("明月", "故乡"), seed=3),
        PoemRequest(form="七律", acrostic="春夏秋冬", seed=4),
        PoemRequest(form="五绝", first_line="春风拂柳绿", seed=5),
        PoemRequest(form="七绝", acrostic="江山如画", keywords=("白云",), title="登楼", seed=6),
        PoemRequest(form="qijue", seed=7),
        PoemRequest(form="七言律诗", first_line="风急天高猿啸哀", seed=8),
        PoemRequest(form="词", cipai="浣溪沙", seed=9),
        PoemRequest(form="词", cipai="水调歌头", title="中秋", keywords=("明月",), seed=10),
        PoemRequest(form="词", cipai="如梦令", acrostic="春花秋月", seed=11),
    ],
    ids=lambda r: f"{r.form}-{r.cipai or ''}-{r.seed}",
)
def test_every_request_kind(poet, req):
    poems = poet.write(req)
    assert len(poems) == req.n
    norm = poet.validate(req)
    for p in poems:
        assert_guarantees(norm, p.text)
        assert p.scores["format"] and p.scores["rhyme"]
        assert p.model_version == poet.version


def test_n_candidates_distinct(poet):
    poems = poet.write(PoemRequest(form="七绝", n=5, seed=3))
    assert len(poems) == 5 and len({p.text for p in poems}) == 5


def test_same_seed_same_poems(poet):
    r = PoemRequest(form="五律", title="秋思", n=2, seed=42)
    assert [p.text for p in poet.write(r)] == [p.text for p in poet.write(r)]
    other = PoemRequest(form="五律", title="秋思", n=2, seed=43)
    assert [p.text for p in poet.write(r)] != [p.text for p in poet.write(other)]


def test_traditional_input_is_simplified(poet):
    req = poet.validate(PoemRequest(form="七絕", acrostic="風雲", title="靜夜"))
    assert req.form == "七绝" and req.acrostic == "风云" and req.title == "静夜"


@pytest.mark.parametrize(
    "req, message",
    [
        (PoemRequest(form="五绝", acrostic="春夏秋冬雪"), "longer than the 4 lines"),
        (PoemRequest(form="七绝", first_line="春风拂柳绿"), "has 7 characters"),
        (PoemRequest(form="词", cipai="不存在的牌"), "词牌"),
        (PoemRequest(form="词"), "needs a 词牌"),
        (PoemRequest(form="八绝"), "unknown form"),
        (PoemRequest(form=""), "empty"),
        (PoemRequest(form="七绝", title="长" * 10_000), "title is too long"),
        (PoemRequest(form="七绝", acrostic="龘"), "does not know"),
        (PoemRequest(form="七绝", keywords=("hello",)), "Chinese characters only"),
        (PoemRequest(form="七绝", n=0), "between 1 and"),
        (PoemRequest(form="七绝", temperature=9.0), "temperature"),
        (PoemRequest(form="五绝", keywords=("一二三四五六",)), "cannot fit"),
        (PoemRequest(form="五绝", acrostic="春", first_line="秋风拂柳绿"), "acrostic starts"),
        (PoemRequest(form="七绝", cipai="浣溪沙"), "only applies to 词"),
        (PoemRequest(form="排律"), "排律"),
    ],
)
def test_bad_requests_get_clear_errors(poet, req, message):
    with pytest.raises(RequestError, match=message):
        poet.write(req)


def test_first_line_breaking_every_template_is_refused(poet):
    # 2nd and 4th chars both 平 (and 5th 平): no 五言 line type allows it.
    with pytest.raises(RequestError, match="tonal pattern"):
        poet.write(PoemRequest(form="五绝", first_line="春风吹花香"))


def test_random_requests_property(poet):
    """Random combinations of forms and constraints: every output passes the engine's checks."""
    rng = random.Random(1234)
    chars = common_chars(400)
    forms = ["五绝", "七绝", "五律", "七律", "词"]
    cipais = ["浣溪沙", "鹧鸪天", "菩萨蛮", "西江月", "清平乐", "卜算子"]
    done = 0
    for i in range(24):
        form = rng.choice(forms)
        kw = tuple(rng.sample(chars, rng.randint(0, 2)))
        acro = "".join(rng.sample(chars, rng.randint(0, 3)))
        req = PoemRequest(form=form, cipai=rng.choice(cipais) if form == "词" else "", keywords=kw,
                          acrostic=acro, seed=i, n=rng.randint(1, 2), temperature=rng.choice([0.5, 0.8, 1.2]))
        try:
            poems = poet.write(req)
        except RequestError:
            continue  # a legitimately impossible combination (e.g. a keyword no slot can take)
        for p in poems:
            assert_guarantees(poet.validate(req), p.text)
        done += 1
    assert done >= 18
