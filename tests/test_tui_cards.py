"""The terminal app writes PNG cards: the service (and its text fallback without a font), and the
export screen driven by the pilot."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image
from test_tui_support import make_app, make_service, settle
from textual.widgets import Input

from core.card import CardPoem, render_card_png
from core.card import fonts as card_fonts
from core.types import PoemRequest, RequestError
from tui.screens.export import ExportScreen


@pytest.fixture
def have_font():
    card_fonts.clear_cache()
    if not card_fonts.font_available():
        pytest.skip("no 楷 font installed (scripts/setup.sh installs fonts-lxgw-wenkai)")


def test_service_writes_a_card_of_ones_own_poem(tmp_path, have_font):
    svc = make_service(tmp_path)
    [p] = svc.write(PoemRequest(form="五律", title="山居"))
    done = svc.export_card(p.id, tmp_path / "out" / "card.png", layout="horizontal", tones=True)
    assert done.fallback is None and done.path == tmp_path / "out" / "card.png"
    expected = render_card_png(CardPoem(p.poem.text, "五律", "山居"), layout="horizontal", tones=True)
    assert Image.open(done.path).tobytes() == Image.open(io.BytesIO(expected)).tobytes()
    with pytest.raises(RequestError, match="no poem #999"):
        svc.export_card(999, tmp_path / "x.png")


def test_service_falls_back_to_a_text_card_without_a_font(tmp_path, monkeypatch):
    svc = make_service(tmp_path)
    [p] = svc.write(PoemRequest(form="七绝", title="春夜"))
    monkeypatch.setattr(card_fonts, "_from_fontconfig", lambda: [])
    monkeypatch.setattr(card_fonts, "font_dirs", lambda: [])
    card_fonts.clear_cache()
    try:
        done = svc.export_card(p.id, tmp_path / "card.png")
    finally:
        monkeypatch.undo()
        card_fonts.clear_cache()
    assert done.path == tmp_path / "card.txt" and "fonts-lxgw-wenkai" in done.fallback
    text = done.path.read_text("utf-8")
    assert text.split("\n")[0].endswith("春") and "格律" in text  # the title column is the rightmost
    assert not (tmp_path / "card.png").exists()


def test_export_screen_writes_the_selected_poem_as_png(tmp_path, have_font):
    svc = make_service(tmp_path)
    svc.write(PoemRequest(form="七绝", title="春夜"))

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("f4")
            await settle(pilot)
            await pilot.press("x")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ExportScreen)
            assert not screen.query_one("#export-card-options").display
            screen.query_one("#fmt-png").value = True
            await pilot.pause()
            assert screen.query_one("#export-card-options").display
            assert screen.query_one("#export-path", Input).value.endswith(".png")
            screen.query_one("#card-tones").value = True
            screen.query_one("#card-traditional").value = True
            screen.query_one("#export-path", Input).value = str(tmp_path / "chunye.png")
            screen.query_one("#export-path", Input).focus()
            await pilot.press("enter")
            await settle(pilot)
            assert (tmp_path / "chunye.png").exists()

    asyncio.run(go())
    rec = svc.history()[0]
    expected = render_card_png(CardPoem(rec.text, rec.form, rec.title), tones=True, script="traditional")
    assert Image.open(tmp_path / "chunye.png").tobytes() == Image.open(io.BytesIO(expected)).tobytes()
