"""Poem cards: every form, both layouts, both scripts, with and without tones, against reference
images; a wrong card fails the comparison; sizes, wrapping, speed, font discovery and the fallback."""

from __future__ import annotations

import os
import statistics
import time

import pytest
from card_support import POEMS, REF_DIR, UPDATE, Variant, compare, downscale, variants
from PIL import Image

from core.card import CardPoem, FontMissingError, card_layout, card_text, render_card, render_card_png
from core.card import fonts as card_fonts
from core.types import RequestError

REFERENCE_FONT = "LXGW WenKai"


@pytest.fixture(scope="module")
def fontset():
    """The font the references were drawn with (scripts/setup.sh installs it: fonts-lxgw-wenkai)."""
    card_fonts.clear_cache()
    try:
        fs = card_fonts.FontSet.load()
    except FontMissingError as e:
        fs = None
        why = str(e)
    else:
        why = f"the card font is {fs.name}, the references need {REFERENCE_FONT}"
    if fs is None or fs.name != REFERENCE_FONT:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (scripts/setup.sh installs fonts-lxgw-wenkai)")
        pytest.skip(f"{why}: run scripts/setup.sh as root or apt-get install fonts-lxgw-wenkai")
    return fs


def _render(v: Variant, fontset, poem: CardPoem | None = None) -> Image.Image:
    return render_card(poem or POEMS[v.poem], layout=v.layout, tones=v.tones, script=v.script, fonts=fontset)


def test_the_variants_cover_every_form_and_combination():
    vs = variants()
    for name in POEMS:
        mine = [v for v in vs if v.poem == name]
        assert {v.layout for v in mine} == {"vertical", "horizontal"}
        assert {v.script for v in mine} == {"simplified", "traditional"}
        assert {v.tones for v in mine} == {True, False}
    assert len({(v.layout, v.script, v.tones) for v in vs}) == 8


@pytest.mark.parametrize("v", variants(), ids=lambda v: v.name)
def test_card_matches_its_reference(v, fontset, tmp_path):
    img = _render(v, fontset)
    ref_path = REF_DIR / f"{v.name}.png"
    if UPDATE or not ref_path.exists():
        if not UPDATE:
            pytest.fail(f"no reference {ref_path.name}: run with SHIREN_UPDATE_CARDS=1 to create it")
        downscale(img).save(ref_path, optimize=True)
    diff = compare(img, Image.open(ref_path))
    if not diff.ok:
        out = tmp_path / ref_path.name
        img.save(out)
        pytest.fail(f"{v.name} differs from its reference: {diff}; the card is at {out}")


def test_a_wrong_card_fails_the_comparison(fontset):
    ink = Variant("qilv", "vertical", "simplified", False)
    ref = Image.open(REF_DIR / f"{ink.name}.png")
    right = _render(ink, fontset)
    assert compare(right, ref).ok
    assert not compare(_render(Variant("qilv", "vertical", "simplified", True), fontset), ref).ok  # coloured
    p = POEMS["qilv"]
    one_char = CardPoem(p.text.replace("猿", "鸟", 1), p.form, p.title)
    assert not compare(_render(ink, fontset, one_char), ref).ok
    assert not compare(_render(Variant("qilv", "vertical", "traditional", False), fontset), ref).ok
    assert not compare(_render(Variant("qilv", "horizontal", "simplified", False), fontset), ref).ok
    # …while slightly different anti-aliasing (a sub-pixel blur of the full-size card) still matches
    from PIL import ImageFilter

    assert compare(right.filter(ImageFilter.GaussianBlur(0.6)), ref).ok


@pytest.mark.parametrize("name", list(POEMS))
def test_sizes_suit_a_phone_and_a_telegram_photo(name, fontset):
    for layout in ("vertical", "horizontal"):
        img = render_card(POEMS[name], layout=layout, fonts=fontset)
        w, h = img.size
        assert max(w, h) <= 1280 and min(w, h) >= 400, (name, layout, img.size)
        assert max(w, h) / min(w, h) <= 2.5
    png = render_card_png(POEMS[name], layout="vertical", tones=True, fonts=fontset)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 300_000


@pytest.mark.parametrize("name", list(POEMS))
@pytest.mark.parametrize("layout", ["vertical", "horizontal"])
def test_every_character_is_placed_once_inside_the_card(name, layout):
    poem = POEMS[name]
    lay, footer = card_layout(poem, layout=layout)
    body = [g for g in lay.glyphs if g.kind == "poem"]
    han = [c for c in poem.text if "\u4e00" <= c <= "\u9fff"]
    assert "".join(g.char for g in body) == "".join(han)
    assert len({(round(g.x, 2), round(g.y, 2)) for g in lay.glyphs}) == len(lay.glyphs)  # no overlaps
    for g in lay.glyphs:
        assert 0.5 <= g.x <= lay.width - 0.5 and 0.5 <= g.y <= lay.height - 0.5, g
    assert footer.startswith("格律 · ")


def test_long_ci_wraps_into_columns_of_bounded_height():
    lay, _ = card_layout(POEMS["ci_long"], layout="vertical")
    columns: dict[float, int] = {}
    for g in lay.glyphs:
        if g.kind == "poem":
            columns[round(g.x, 2)] = columns.get(round(g.x, 2), 0) + 1
    assert len(columns) >= 8 and max(columns.values()) <= 14
    hlay, _ = card_layout(POEMS["ci_long"], layout="horizontal")
    rows: dict[float, int] = {}
    for g in hlay.glyphs:
        if g.kind in ("poem", "punct"):
            rows[round(g.y, 2)] = rows.get(round(g.y, 2), 0) + 1
    assert max(rows.values()) <= 14


def test_jinti_vertical_is_one_clause_per_column_right_to_left():
    lay, _ = card_layout(POEMS["qijue"], layout="vertical")
    body = [g for g in lay.glyphs if g.kind == "poem"]
    xs = sorted({round(g.x, 2) for g in body}, reverse=True)
    assert len(xs) == 4
    first = "".join(g.char for g in sorted((g for g in body if round(g.x, 2) == xs[0]), key=lambda g: g.y))
    assert first == "秦时明月汉时关"
    title = [g for g in lay.glyphs if g.kind == "title"]
    assert all(g.x > xs[0] for g in title)  # the title column is the rightmost


def test_traditional_script_on_the_card():
    lay, footer = card_layout(POEMS["qijue"], layout="horizontal", script="traditional")
    text = "".join(g.char for g in lay.glyphs)
    assert "秦時明月漢時關" in text and "萬里長征人未還" in text and "絕" in text
    assert "韻" in footer


def test_render_time_is_well_under_a_second(fontset, capsys):
    times = []
    for i in range(20):
        name = list(POEMS)[i % len(POEMS)]
        t0 = time.perf_counter()
        render_card_png(POEMS[name], layout=("vertical", "horizontal")[i % 2], tones=bool(i % 3), fonts=fontset)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    with capsys.disabled():
        print(f"\ncard render (PNG bytes): median {median * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over 20")
    assert median < 0.5


def test_bad_input_is_a_clear_error():
    with pytest.raises(RequestError):
        card_layout(CardPoem("hello world"))
    with pytest.raises(RequestError, match="layout"):
        card_layout(POEMS["qijue"], layout="diagonal")
    with pytest.raises(RequestError, match="script"):
        card_layout(POEMS["qijue"], script="cursive")


def test_without_a_kai_font_a_clear_message_and_a_text_card(monkeypatch):
    monkeypatch.setattr(card_fonts, "_from_fontconfig", lambda: [])
    monkeypatch.setattr(card_fonts, "font_dirs", lambda: [])
    card_fonts.clear_cache()
    try:
        assert not card_fonts.font_available()
        with pytest.raises(FontMissingError, match="fonts-lxgw-wenkai"):
            render_card(POEMS["qijue"])
        lay, footer = card_layout(POEMS["qijue"], layout="vertical")
        text = card_text(lay, footer)
        rows = text.split("\n")
        assert rows[0].startswith("不") and rows[0].rstrip().endswith("出")  # columns right to left
        assert "格律" in text
    finally:
        card_fonts.clear_cache()


def test_font_found_in_font_folders_without_fontconfig(monkeypatch, tmp_path, fontset):
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "LXGWWenKai-Regular.ttf").symlink_to(fontset.primary.path)
    (tmp_path / "fonts" / "NotAFont-kai.ttf").write_bytes(b"junk")
    monkeypatch.setattr(card_fonts, "_from_fontconfig", lambda: [])
    monkeypatch.setattr(card_fonts, "font_dirs", lambda: [tmp_path / "fonts"])
    card_fonts.clear_cache()
    try:
        faces = card_fonts.find_faces()
        assert [f.family for f in faces] == ["LXGW WenKai"]
    finally:
        card_fonts.clear_cache()


def test_explicit_font_setting(monkeypatch, tmp_path, fontset):
    monkeypatch.setenv(card_fonts.FONT_ENV, str(tmp_path / "missing.ttf"))
    with pytest.raises(FontMissingError, match="SHIREN_CARD_FONT"):
        card_fonts.find_faces()
    monkeypatch.setenv(card_fonts.FONT_ENV, str(fontset.primary.path))
    assert card_fonts.find_faces()[0].path == fontset.primary.path


def test_a_clause_longer_than_a_column_or_row_wraps():
    from core.card.layout import Clause, plan

    long = "一二三四五六七八九十百千万亿兆京垓秭穰沟"  # 20 characters in one clause
    clauses = [Clause(long, ("平",) * len(long), "，"), Clause("春风又绿江南岸", ("仄",) * 7, "。")]
    v = plan(clauses, "长句", "词", layout="vertical", jinti=False)
    columns: dict[float, list[str]] = {}
    for g in v.glyphs:
        if g.kind == "poem":
            columns.setdefault(round(g.x, 2), []).append(g.char)
    assert max(len(c) for c in columns.values()) <= 14
    assert "".join("".join(c) for _, c in sorted(columns.items(), reverse=True)) == long + "春风又绿江南岸"
    h = plan(clauses, "长句", "词", layout="horizontal", jinti=False)
    rows: dict[float, int] = {}
    for g in h.glyphs:
        if g.kind in ("poem", "punct"):
            rows[round(g.y, 2)] = rows.get(round(g.y, 2), 0) + 1
    assert max(rows.values()) <= 14 and sum(rows.values()) == len(long) + 7 + 2
