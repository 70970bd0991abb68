"""The 平水韵 table: readings, tone classes, variants, simplified / traditional."""

from core.gelv import (
    GROUP_NAMES,
    PING_GROUP_NAMES,
    Reading,
    jinti_templates,
    ping_groups,
    readings,
    rhyme_lines,
    tone_classes,
)


def test_group_names():
    assert len(GROUP_NAMES) == 106
    assert len(PING_GROUP_NAMES) == 30
    assert PING_GROUP_NAMES[0] == "一东" and PING_GROUP_NAMES[9] == "十灰" and PING_GROUP_NAMES[-1] == "十五咸"


def test_basic_readings():
    assert readings("东") == (Reading("一东", "平", "平"),)
    assert tone_classes("月") == frozenset({"仄"})
    assert readings("月")[0].shengdiao == "入"
    assert ping_groups("哀") == frozenset({"十灰"})
    assert readings("") == () and tone_classes("a") == frozenset()


def test_multi_reading_chars_carry_all_readings():
    assert tone_classes("看") == frozenset({"平", "仄"})
    assert {r.group for r in readings("看")} >= {"十四寒", "十五翰"}
    assert "十灰" in ping_groups("衰") and "四支" in ping_groups("衰")


def test_simplified_and_traditional_agree():
    for s, t in [("东", "東"), ("风", "風"), ("楼", "樓"), ("门", "門"), ("长", "長"), ("鸟", "鳥"), ("乡", "鄉")]:
        assert readings(s), s
        assert set(readings(s)) >= set(readings(t)), (s, t)


def test_variants():
    for a, b in [("靑", "青"), ("爲", "为"), ("牀", "床"), ("畱", "留"), ("為", "为"), ("隣", "邻")]:
        assert readings(a) and readings(b), (a, b)
        assert ping_groups(a) & ping_groups(b) or tone_classes(a) == tone_classes(b), (a, b)
    assert "九青" in ping_groups("青") and "九青" in ping_groups("靑")
    assert "十一尤" in ping_groups("留") and "十一尤" in ping_groups("畱")
    assert "七阳" in ping_groups("床") and "四支" in ping_groups("为")


def test_compatibility_ideograph_is_normalised():
    assert readings("\uf9b2") == readings("零")  # CJK COMPATIBILITY IDEOGRAPH-F9B2 -> 零


def test_templates():
    ts = jinti_templates(5, 4)
    assert len(ts) == 4
    names = {t.name for t in ts}
    assert names == {"仄起首句不入韵", "仄起首句入韵", "平起首句不入韵", "平起首句入韵"}
    t = next(t for t in ts if t.name == "仄起首句不入韵")
    assert t.lines == ("中仄平平仄", "平平仄仄平", "中平平仄仄", "中仄仄平平")
    assert rhyme_lines(t) == [1, 3]
    t7 = next(t for t in jinti_templates(7, 8) if t.name == "仄起首句入韵")
    assert t7.full[0] == "仄仄平平仄仄平" and len(t7.lines) == 8
    assert rhyme_lines(t7) == [0, 1, 3, 5, 7]
    assert len(jinti_templates(5, 12)[0].lines) == 12
