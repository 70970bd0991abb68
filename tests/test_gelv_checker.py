"""The 近体 checker on famous poems, known violations, variants and garbage."""

import json
from pathlib import Path

import pytest

from core.gelv import analyze
from core.types import RequestError

POEMS = json.loads((Path(__file__).parent / "fixtures" / "gelv" / "poems.json").read_text(encoding="utf-8"))


def test_denggao_qilv():
    an = analyze(POEMS["denggao"]["simplified"])
    assert an.form == "七律" and an.is_jinti
    assert an.rhyme_ok and an.rhyme_group == "十灰"
    assert an.first_line_rhymes  # 首句入韵: 哀
    assert an.tone_relaxed_ok and an.relaxed_lines_ok == 8 and an.nian_dui_ok
    assert not an.gu_ping and not an.san_ping_wei
    assert an.verdict.startswith("合律")
    s = an.scores()
    assert s["format"] and s["rhyme"] and s["tone_relaxed"] and s["relaxed_line_rate"] == 1.0
    rhyme_notes = [ln.chars[-1] for ln in an.lines if ln.chars[-1].is_rhyme_pos]
    assert [c.char for c in rhyme_notes] == ["哀", "回", "来", "台", "杯"]
    assert all(c.rhyme_group == "十灰" for c in rhyme_notes)


def test_shanju_qiuming_wulv_strict():
    an = analyze(POEMS["shanju"]["simplified"])
    assert an.form == "五律" and an.rhyme_group == "十一尤"
    assert not an.first_line_rhymes  # 首句不入韵: 后
    assert an.template == "平起首句不入韵"
    assert an.tone_strict_ok and an.tone_relaxed_ok and an.rhyme_ok and an.nian_dui_ok


def test_guanque_wujue():
    an = analyze(POEMS["guanque"]["simplified"])
    assert an.form == "五绝" and an.rhyme_group == "十一尤" and an.template == "仄起首句不入韵"
    assert an.tone_strict_ok and an.rhyme_ok and not an.first_line_rhymes
    assert [c.tone_mark for c in an.lines[0].chars] == ["仄", "仄", "平", "平", "仄"]


def test_first_line_rhymes_qijue():
    an = analyze(POEMS["shanxing"]["simplified"])
    assert an.form == "七绝" and an.first_line_rhymes and an.rhyme_group == "六麻"
    assert an.lines[0].chars[-1].is_rhyme_pos and an.rhyme_ok and an.tone_relaxed_ok


def test_fengqiao_first_line_rhymes_xian():
    an = analyze(POEMS["fengqiao"]["simplified"])
    assert an.rhyme_group == "一先" and an.first_line_rhymes and an.rhyme_ok


def test_ze_rhyme_gujue_is_not_jinti():
    an = analyze(POEMS["jiangxue"]["simplified"])
    assert an.form == "古绝" and not an.is_jinti
    assert not an.scores()["format"]
    assert "非近体" in an.verdict and any("仄声韵" in f for f in an.findings)


def test_wrong_rhyme_group():
    an = analyze(POEMS["broken_rhyme"]["simplified"])
    assert an.is_jinti and not an.rhyme_ok and an.rhyme_group == "六麻"
    last = an.lines[3].chars[-1]
    assert "出韵" in last.violations and "一先" in last.rhyme_group
    assert "出韵" in an.verdict


def test_shi_nian():
    an = analyze(POEMS["broken_nian"]["simplified"])
    assert not an.nian_dui_ok
    assert "失粘" in an.lines[2].violations
    assert "失粘" in an.lines[2].chars[1].violations
    assert not an.verdict.startswith("合律")


def test_san_ping_wei():
    an = analyze(POEMS["san_ping_wei"]["simplified"])
    assert an.san_ping_wei == [3]
    assert "三平尾" in an.lines[3].violations
    assert an.tone_relaxed_ok and not an.tone_strict_ok  # 1/3/5 free, but 三平尾 is still reported
    assert "三平尾" in an.verdict


def test_gu_ping():
    an = analyze(POEMS["gu_ping"]["simplified"])
    assert an.gu_ping == [1]
    assert "犯孤平" in an.lines[1].violations
    assert "孤平" in an.verdict


def test_repeated_chars_but_not_diezi():
    an = analyze(POEMS["denggao"]["simplified"])
    assert an.repeated_chars == []  # 萧萧 / 滚滚 are 叠字
    an = analyze(POEMS["jingyesi"]["simplified"])
    assert set(an.repeated_chars) >= {"明", "月", "头"}


def test_traditional_equals_simplified():
    for key in ("denggao", "shanju", "guanque"):
        a = analyze(POEMS[key]["simplified"])
        b = analyze(POEMS[key]["traditional"])
        sa, sb = a.scores(), b.scores()
        assert sa.pop("variant_chars") == 0 and sb.pop("variant_chars") == len(b.variant_chars)
        assert sa == sb, key
        assert (a.form, a.rhyme_group, a.template) == (b.form, b.rhyme_group, b.template)
        assert [c.tone_mark for ln in a.lines for c in ln.chars] == [c.tone_mark for ln in b.lines for c in ln.chars]


def test_variant_forms_same_result():
    a = analyze(POEMS["jingyesi"]["simplified"])
    b = analyze(POEMS["jingyesi"]["variant"])  # 牀 for 床
    assert a.scores() == b.scores() and a.rhyme_group == b.rhyme_group == "七阳"
    c = analyze("爲客常思靑山色，畱君共醉白雲間。")
    assert c.lines[0].chars[0].tones and c.lines[0].chars[5].tones == {"平"}


def test_form_argument_and_shape_mismatch():
    an = analyze(POEMS["guanque"]["simplified"], form="wujue")
    assert an.form == "五绝" and an.is_jinti
    an = analyze(POEMS["guanque"]["simplified"], form="七律")
    assert not an.scores()["format"] and "不合七律格式" in an.findings[0]
    with pytest.raises(RequestError, match="unknown form"):
        analyze(POEMS["guanque"]["simplified"], form="sonnet")


def test_to_dict_is_json():
    an = analyze(POEMS["denggao"]["traditional"])
    d = json.loads(json.dumps(an.to_dict(), ensure_ascii=False))
    assert d["form"] == "七律" and d["rhyme_group"] == "十灰" and len(d["lines"]) == 8
    assert d["lines"][0]["chars"][0] == {"char": "風", "tone": "平", "tones": ["平"], "expected": "中",
                                         "is_rhyme_pos": False, "rhyme_group": "", "violations": []}


@pytest.mark.parametrize(
    "text,msg",
    [
        ("", "empty"),
        ("   \n\n ", "empty"),
        ("春" * 10000, "too long"),
        ("😀😀😀😀😀，😀😀😀😀😀。", "non-Chinese"),
        ("Hello world, this is not a poem.", "non-Chinese"),
        ("床前明月光", "only one line"),
        ("，。！？", "no Chinese"),
        ("床前明月光，疑是地上霜🌙。", "non-Chinese"),
    ],
)
def test_garbage_gives_clear_error(text, msg):
    with pytest.raises(RequestError, match=msg):
        analyze(text)


def test_other_shapes_are_reported_not_raised():
    an = analyze("床前明月光，疑是地上霜。举头望明月，低头思故乡。我歌月徘徊，我舞影零乱。")
    assert an.form == "古体" and not an.is_jinti and "不是近体诗" in an.findings[0]
    an = analyze("君不见黄河之水天上来，奔流到海不复回。")
    assert not an.is_jinti
