"""词: structures from 全宋词, checking against a 词牌, unknown 词牌."""

import json
from pathlib import Path

import pytest

from core.gelv import analyze, cipai_patterns, top_cipai
from core.types import RequestError

POEMS = json.loads((Path(__file__).parent / "fixtures" / "gelv" / "poems.json").read_text(encoding="utf-8"))


def test_top_cipai():
    top = top_cipai(10)
    assert len(top) == 10 and top[0] == "浣溪沙"
    assert {"水调歌头", "鹧鸪天", "菩萨蛮"} <= set(top)


def test_patterns_structure():
    pats = cipai_patterns("浣溪沙")
    assert pats[0].count > 500 and pats[0].lengths == (7, 7, 7, 7, 7, 7)
    assert [c.rhyme for c in pats[0].clauses] == [True, True, True, False, True, True]
    assert pats[0].rhyme_tone == "平" and pats[0].text_length == 42
    sd = cipai_patterns("水调歌头")
    assert len(sd) >= 3  # several common variants, most common first
    assert sd[0].count >= sd[1].count >= sd[2].count
    assert sd[0].clauses[1].rhyme and not sd[0].clauses[0].rhyme
    assert cipai_patterns("水調歌頭")[0] == sd[0]  # traditional name
    assert cipai_patterns("《水调歌头·明月几时有》")[0] == sd[0]


def test_shuidiao_passes():
    p = POEMS["shuidiao"]
    an = analyze(p["simplified"], cipai=p["cipai"])
    assert an.form == "词" and an.cipai == "水调歌头" and an.scores()["format"]
    assert an.rhyme_ok and an.rhyme_group == "第七部"
    assert an.tone_relaxed_ok
    assert [i for i, ln in enumerate(an.lines) if ln.chars[-1].is_rhyme_pos] == [1, 3, 6, 8, 11, 13, 16, 18]


def test_huanxisha_passes_and_auto_detect():
    p = POEMS["huanxisha"]
    an = analyze(p["simplified"], cipai=p["cipai"])
    assert an.rhyme_ok and an.scores()["format"] and an.verdict.startswith("合谱")
    auto = analyze(POEMS["shuidiao"]["simplified"])  # mixed line lengths: found by its structure
    assert auto.form == "词" and auto.cipai == "水调歌头"


def test_ci_structure_mismatch_reported():
    an = analyze("一曲新词酒一杯，去年天气旧亭台。夕阳西下几时回？", cipai="浣溪沙")
    assert not an.scores()["format"] and "句式" in an.verdict


def test_ci_broken_rhyme():
    text = "一曲新词酒一杯，去年天气旧亭台。夕阳西下几时回？\n无可奈何花落去，似曾相识燕归来。小园香径独徘徊。"
    bad = text.replace("燕归来", "燕归山")
    an = analyze(bad, cipai="浣溪沙")
    assert not an.rhyme_ok and "不押韵" in an.lines[4].chars[-1].violations


def test_unknown_cipai():
    with pytest.raises(RequestError, match="unknown 词牌"):
        cipai_patterns("不存在的调")
    with pytest.raises(RequestError, match="did you mean"):
        analyze(POEMS["huanxisha"]["simplified"], cipai="浣溪")
