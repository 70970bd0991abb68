"""End to end: the 🖼 button, poems sent as cards by default (/settings), rating and deleting a card,
and the text fallback without a 楷 font — through the real PTB Application and the fake Bot API."""

from __future__ import annotations

import io

import pytest
from fake_telegram import RunningBot, poem_id
from PIL import Image

from core.card import CardPoem, render_card_png
from core.card import fonts as card_fonts


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    card_fonts.clear_cache()
    if not card_fonts.font_available():
        pytest.skip("no 楷 font installed (scripts/setup.sh installs fonts-lxgw-wenkai)")
    with RunningBot(tmp_path_factory.mktemp("bot_cards")) as rb:
        yield rb


def _card(rb, user: int, poem):
    mark = rb.fake.mark()
    ans = rb.fake.click(user, poem, f"c:{poem_id(poem)}")
    return ans, rb.fake.wait("sendPhoto", chat_id=user, since=mark)[0]


def test_card_button_sends_the_card_as_a_photo_with_the_poem_as_caption(rb):
    p = rb.poem(501, "春夜")
    pid = poem_id(p)
    assert f"c:{pid}" in p.buttons
    ans, photo = _card(rb, 501, p)
    assert ans.params.get("text")  # answered at once ("drawing the card…")
    assert "《春夜》" in photo.text and "七绝" in photo.text  # the caption: the poem message
    assert photo.params["parse_mode"] == "HTML"
    assert photo.buttons[:5] == [f"r:{pid}:{n}" for n in range(1, 6)]
    assert photo.reply_to == p.result["message_id"]
    png = rb.fake.files[photo.result["photo"][0]["file_id"]]
    rec = rb.store.get_poem(pid)
    assert png == render_card_png(CardPoem(rec.text, rec.form, rec.title, rec.cipai))  # the vertical card
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and max(img.size) <= 1280
    assert rb.fake.find("sendChatAction", chat_id=501, where=lambda c: c.params.get("action") == "upload_photo")


def test_rating_and_deleting_a_card_edit_its_caption(rb):
    fake = rb.fake
    p = rb.poem(502, "江")
    pid = poem_id(p)
    _, photo = _card(rb, 502, p)
    mark = fake.mark()
    fake.click(502, photo, f"r:{pid}:5")
    e = fake.wait("editMessageCaption", chat_id=502, since=mark)[0]
    assert "★★★★★" in e.text and rb.store.get_poem(pid).rating == 5
    assert not fake.find("editMessageText", chat_id=502, since=mark)
    mark = fake.mark()
    fake.click(502, photo, f"d:{pid}")
    e = fake.wait("editMessageCaption", chat_id=502, since=mark)[0]
    assert "已删除" in e.text and not e.buttons and rb.store.get_poem(pid) is None


def test_card_of_someone_elses_poem_is_refused(rb):
    p = rb.poem(503, "山")
    mark = rb.fake.mark()
    ans = rb.fake.click(504, p, f"c:{poem_id(p)}")
    assert "不是你的诗" in ans.params["text"]
    rb.fake.quiet(0.3)
    assert not rb.fake.find("sendPhoto", since=mark)


def test_settings_make_cards_the_default_in_the_users_script(rb):
    fake = rb.fake
    r = fake.ask(505, "/settings")
    assert "发送方式：文字" in r.text and "s:c:1" in r.buttons
    mark = fake.mark()
    fake.click(505, r, "s:c:1")
    e = fake.wait("editMessageText", chat_id=505, since=mark)[0]
    assert "发送方式：图片卡片" in e.text
    assert rb.store.get_settings(rb.user_id(505)).card_default is True
    mark = fake.mark()
    fake.click(505, e, "s:s:traditional")
    fake.wait("editMessageText", chat_id=505, since=mark)
    mark = fake.mark()
    fake.send(505, "/continue 白日依山尽")
    photo = fake.wait("sendPhoto", chat_id=505, since=mark)[0]
    assert "白日依山盡" in photo.text and any(b.startswith("r:") for b in photo.buttons)
    assert not fake.find("sendMessage", chat_id=505, since=mark)
    rec = rb.store.get_poem(poem_id(photo))
    png = fake.files[photo.result["photo"][0]["file_id"]]
    assert png == render_card_png(CardPoem(rec.text, rec.form, rec.title, rec.cipai), script="traditional")
    mark = fake.mark()
    fake.click(505, e, "s:c:0")
    fake.wait("editMessageText", chat_id=505, since=mark)
    assert rb.store.get_settings(rb.user_id(505)).card_default is False
    assert rb.poem(505, "夜").method == "sendMessage"


def test_without_a_font_the_poem_stays_text_with_a_clear_note(rb, monkeypatch):
    fake = rb.fake
    p = rb.poem(506, "风")
    monkeypatch.setattr(card_fonts, "_from_fontconfig", lambda: [])
    monkeypatch.setattr(card_fonts, "font_dirs", lambda: [])
    card_fonts.clear_cache()
    try:
        mark = fake.mark()
        fake.click(506, p, f"c:{poem_id(p)}")
        note = fake.wait("sendMessage", chat_id=506, since=mark)[0]
        assert "楷" in note.text and "fonts-lxgw-wenkai" in note.text
        r = fake.ask(506, "/settings")
        mark = fake.mark()
        fake.click(506, r, "s:c:1")
        fake.wait("editMessageText", chat_id=506, since=mark)
        text = rb.poem(506, "雨")
        assert text.method == "sendMessage" and "《雨》" in text.text and "楷" in text.text
        assert not fake.find("sendPhoto", chat_id=506, since=mark)
    finally:
        monkeypatch.undo()
        card_fonts.clear_cache()
