"""`shiren card`: from text or a stored poem id, both layouts, tones; bad input and a missing font
are one clear line (and the text card), never a traceback."""

from __future__ import annotations

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from core.card import fonts as card_fonts
from core.card.cli import card
from core.types import Poem, PoemRequest
from db.store import Store

QIJUE = "秦时明月汉时关，万里长征人未还。\n但使龙城飞将在，不教胡马度阴山。"


@pytest.fixture
def run():
    app = typer.Typer()
    app.command()(card)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(app, list(args), **kw)


@pytest.fixture
def have_font():
    card_fonts.clear_cache()
    if not card_fonts.font_available():
        pytest.skip("no 楷 font installed (scripts/setup.sh installs fonts-lxgw-wenkai)")


def test_card_from_text_vertical_and_horizontal(run, tmp_path, have_font):
    r = run(QIJUE, "-o", str(tmp_path / "v.png"), "--title", "出塞", "--tones")
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "vertical" in r.output
    v = Image.open(tmp_path / "v.png")
    r = run(QIJUE, "-o", str(tmp_path / "h.png"), "--horizontal", "--traditional")
    assert r.exit_code == 0, r.output
    h = Image.open(tmp_path / "h.png")
    assert v.height > v.width * 0.9 and h.width > h.height  # 4 columns stand; 2 couplet rows lie


def test_card_from_a_stored_poem(run, tmp_path, have_font):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store(url) as store:
        uid = store.ensure_user("cli", "me")
        [pid] = store.record_poems(uid, PoemRequest(form="七绝", title="出塞"),
                                   [Poem(text=QIJUE, form="七绝", title="出塞", model_version="t")])
    r = run(str(pid), "-o", str(tmp_path / "p.png"), "--database-url", url)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "p.png").width > 400
    r = run("12345", "-o", str(tmp_path / "q.png"), "--database-url", url)
    assert r.exit_code == 2 and "no poem #12345" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args,message", [
    (["hello world"], "not a Chinese poem"),
    ([QIJUE, "--form", "八绝"], "form"),
])
def test_bad_input_is_one_clear_line(run, tmp_path, args, message):
    r = run(*args, "-o", str(tmp_path / "x.png"))
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.png").exists()


def test_output_folder_is_refused(run, tmp_path, have_font):
    r = run(QIJUE, "-o", str(tmp_path))
    assert r.exit_code == 2 and "folder" in r.output


def test_without_a_font_the_card_is_printed_as_text(run, tmp_path, monkeypatch):
    monkeypatch.setattr(card_fonts, "_from_fontconfig", lambda: [])
    monkeypatch.setattr(card_fonts, "font_dirs", lambda: [])
    card_fonts.clear_cache()
    try:
        r = run(QIJUE, "-o", str(tmp_path / "x.png"), "--title", "出塞")
    finally:
        card_fonts.clear_cache()
    assert r.exit_code == 2 and "fonts-lxgw-wenkai" in r.output and "Traceback" not in r.output
    assert "秦" in r.output and "出" in r.output.split("\n")[0]  # the text card: title column rightmost
    assert not (tmp_path / "x.png").exists()
