"""格律 as a reader hears it: common readings of 多音字 (core.gelv.usage) and one form per character
(core.variants), in the checker, the decoder's rules, data prep and the tokenizer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from core.gelv import analyze
from core.gelv.usage import (
    common_cilin_bu,
    common_ping_groups,
    common_tone_classes,
    group_usage,
    thresholds,
    tone_usage,
)
from core.variants import is_variant, normalise, standard_form, variants_in

FIX = json.loads((Path(__file__).parent / "fixtures" / "rare_readings.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", FIX["generated"], ids=lambda c: c["char"])
def test_generated_poems_fail_under_common_readings(case):
    a = analyze(case["text"])
    assert a.rhyme_ok and a.tone_relaxed_ok, a.verdict  # by every reading: passes, as it did before
    assert not (a.common_rhyme_ok and a.common_tone_relaxed_ok), a.common_verdict
    named = [r for r in a.rare_readings if r.char == case["char"] and r.kind == case["kind"]]
    assert named, [r.message() for r in a.rare_readings]
    r = named[0]
    assert r.reading.startswith(case["reading"])
    assert r.of >= 1000 and r.share < 0.05  # the figure comes from real poets' uses
    assert any(case["char"] in f and "罕见读音" in f for f in a.findings)
    d = a.to_dict()
    assert d["rare_readings"] and d["common_readings"]["verdict"] == a.common_verdict
    assert d["scores"]["rare_readings"] == len(a.rare_readings)


@pytest.mark.parametrize("case", FIX["famous"], ids=lambda c: c["title"])
def test_famous_poems_with_attested_second_readings_still_pass(case):
    a = analyze(case["text"])
    assert a.rhyme_ok and a.tone_relaxed_ok, a.verdict
    assert a.common_rhyme_ok and a.common_tone_relaxed_ok, a.common_verdict
    assert a.rare_readings == []


def test_common_readings_table():
    th = thresholds()
    assert 0.01 <= th["tonal"] <= 0.1 and 0.01 <= th["rhyme"] <= 0.1
    # rare: 深 仄, 迟 仄, 台 四支, 还 一先
    assert common_tone_classes("深") == {"平"} and tone_usage("深", "仄").rare
    assert common_tone_classes("迟") == {"平"}
    assert common_ping_groups("台") == {"十灰"} and group_usage("台", "四支").rare
    assert common_ping_groups("还") == {"十五删"}
    # well attested: 将 jiàng, 望 wáng, 看 kān, 思 sì
    for ch in "将望看思":
        assert common_tone_classes(ch) == {"平", "仄"}, ch
    # a traditional or variant form reads through its standard form
    assert common_tone_classes("遲") == common_tone_classes("迟")
    assert common_ping_groups("臺") == {"十灰"}
    # 词 rhyme classes: 部 of common readings of that tone
    assert common_cilin_bu("深", "仄") == frozenset()
    assert common_cilin_bu("将", "仄") == {2}


def test_variant_map():
    for var, std in zip("鴈隠疎凖", "雁隐疏准", strict=True):
        assert standard_form(var) == std and is_variant(var)
    assert not is_variant("疏") and standard_form("春") == "春"
    assert normalise("疎影横斜") == "疏影横斜"
    assert variants_in("鴈疎疏") == ["鴈", "疎"]
    for ch in "于余著乾后":  # standard characters are never rewritten
        assert standard_form(ch) == ch


def test_checker_reads_variants_and_shows_them_as_written():
    # 林逋《山园小梅》 with 疎 for 疏: the variant is read as 疏 and shown as written.
    text = "众芳摇落独暄妍，占尽风情向小园。\n疎影横斜水清浅，暗香浮动月黄昏。"
    a = analyze(text)
    assert a.variant_chars == ["疎"]
    assert a.lines[2].text.startswith("疎") and a.lines[2].chars[0].char == "疎"
    assert "疎" in a.text
    assert a.lines[2].chars[0].tones == analyze(text.replace("疎", "疏")).lines[2].chars[0].tones
    assert any("疎（疏）" in f for f in a.findings)
    assert a.to_dict()["scores"]["variant_chars"] == 1


def test_same_rhyme_in_two_forms_is_a_repeated_rhyme():
    base = "春来何处觅幽居，竹外斜阳影渐疏。\n不见故人空怅望，一庭芳草自扶疎。"
    a = analyze(base)
    assert a.repeated_rhymes == ["疏"]
    assert "重韵" in a.verdict and not a.verdict.startswith("合律")


def test_neighbouring_group_needed_to_borrow_a_first_line_rhyme():
    # 元稹《行宫》 rhymes 宫/红 (一东) with 宗 (二冬): 邻韵 — still a borrowing first line? Here the first
    # line end 宫 is in the poem's own group; the test is the unrelated case: a 平 end in another 部.
    a = analyze("寥落古行宫，宫花寂寞红。\n白头宫女在，闲坐说玄宗。")
    assert a.rhyme_group in ("一东", "二冬")
    far = analyze("悲来千岁暮江南，病起犹能泪似金。\n好是天涯为客恨，吾行未得意何心。")
    # 南 rhymes in 十二侵 only by a rare reading (十三覃 otherwise, another 部): by common readings the
    # first line does not rhyme, and its 平 end breaks the 首句不入韵 template.
    assert not far.common_tone_relaxed_ok
    assert any(r.char == "南" and r.kind == "rhyme" for r in far.rare_readings)


def test_vocab_index_never_offers_a_variant_or_a_rare_tone():
    from core.generate import VocabIndex
    from training.tokenizer import build_tokenizer

    tok = build_tokenizer(list("春花疏疎深迟将月，。"))
    vi = VocabIndex(tok)
    ids = {c: vi.char_id(c) for c in "疏疎深迟将"}
    assert not vi.content[ids["疎"]] and vi.content[ids["疏"]]
    assert vi.ping[ids["深"]] and not vi.ze[ids["深"]]  # 深's 去声 reading is rare
    assert not vi.ze[ids["迟"]]
    assert vi.ping[ids["将"]] and vi.ze[ids["将"]]  # both readings of 将 are common


def test_data_prep_normalises_variants_and_keeps_the_split():
    from training.corpus import RawPoem, process, split_of

    raw = [RawPoem(title="山園小梅", author="林逋", dynasty="宋", paragraphs=["疎影橫斜水清淺，暗香浮動月黃昏。"],
                   cipai="", source="test", source_id="1")]
    recs, _ = process(raw, {})
    (r,) = recs
    assert r.text.startswith("疏影横斜") and "疎" not in r.text
    assert r.text_trad.startswith("疎影橫斜")  # the traditional text is kept as it was
    from opencc import OpenCC

    assert r.split == split_of(OpenCC("t2s").convert(r.text_trad))  # the split goes by the t2s text


def test_request_text_is_normalised():
    from core.requests import clean_text

    assert clean_text("疎影") == "疏影"
    assert clean_text("鴈") == "雁"


def test_a_first_line_that_fits_only_by_a_rare_reading_is_refused_with_the_reason():
    from core.plan import build_plan
    from core.requests import normalize_request
    from core.types import PoemRequest, RequestError

    req = normalize_request(PoemRequest(form="七律", first_line="所困每患失其亲"))
    with pytest.raises(RequestError, match=r"「亲」 read 仄 is a rare reading \(3 of 3,045"):
        build_plan(req, random.Random(0))
