"""End to end: inline mode ("@bot 春夜" in any chat) through the real PTB Application and the fake
Bot API — text and card results, stored poems, the ⭐ deep link, caching, debouncing, limits."""

from __future__ import annotations

import re

import pytest
from fake_telegram import BOT_USERNAME, RunningBot

from bot.handlers.inline import CACHE_TIME_S, INLINE_POEMS, parse_inline_query
from core.card import fonts as card_fonts
from core.types import RequestError

CARD_CHAT = -100777


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    card_fonts.clear_cache()
    if not card_fonts.font_available():
        pytest.skip("no 楷 font installed (scripts/setup.sh installs fonts-lxgw-wenkai)")
    with RunningBot(tmp_path_factory.mktemp("bot_inline"), card_chat=CARD_CHAT) as rb:
        yield rb


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """A bot without a card chat (text results only) and a tight rate limit."""
    with RunningBot(tmp_path_factory.mktemp("bot_inline_strict"), rate_burst=1, rate_per_minute=0.5) as rb:
        yield rb


def _results(call) -> list[dict]:
    return call.params.get("results") or []


def test_parse_inline_queries():
    assert parse_inline_query("春夜", "五律").form == "五律"
    r = parse_inline_query("七律 秋兴")
    assert (r.form, r.title) == ("七律", "秋兴")
    r = parse_inline_query("藏头 春夏秋冬")
    assert (r.form, r.acrostic) == ("七绝", "春夏秋冬")
    assert parse_inline_query("藏头 春夏秋冬夜", "五绝").form == "五律"
    r = parse_inline_query("浣溪沙 春游")
    assert (r.form, r.cipai, r.title) == ("词", "浣溪沙", "春游")
    for bad in ("藏头", "藏头 一二三四五六七八九", "春" * 31):
        with pytest.raises(RequestError):
            parse_inline_query(bad)


def test_a_topic_offers_text_and_card_results_stored_for_the_sender(rb):
    fake = rb.fake
    mark = fake.mark()
    ans = fake.ask_inline(601, "春夜")
    assert ans.params["is_personal"] is True and ans.params["cache_time"] == CACHE_TIME_S
    results = _results(ans)
    texts = [r for r in results if r["type"] == "article"]
    cards = [r for r in results if r["type"] == "photo"]
    assert 1 <= len(texts) <= INLINE_POEMS and len(cards) == len(texts)
    uid = rb.user_id(601)
    stored = rb.store.history(uid)
    assert len(stored) == len(texts) and all(rec.request.title == "春夜" for rec in stored)
    ids = {rec.id for rec in stored}
    for r in texts:
        content = r["input_message_content"]
        assert "《春夜》" in content["message_text"] and content["parse_mode"] == "HTML"
        assert "春夜" in r["title"] and r["description"]
    uploads = fake.find("sendPhoto", chat_id=CARD_CHAT, since=mark)
    assert len(uploads) == len(cards)
    for r in cards:
        assert r["photo_file_id"] in fake.files and "《春夜》" in r["caption"]
    for r in results:
        [[button]] = r["reply_markup"]["inline_keyboard"]
        m = re.fullmatch(rf"https://t\.me/{BOT_USERNAME}\?start=p(\d+)", button["url"])
        assert m and int(m.group(1)) in ids and int(r["id"][1:]) == int(m.group(1))


def test_the_same_query_is_answered_from_the_cache(rb):
    first = rb.fake.ask_inline(602, "秋思")
    n = rb.store.count_history(rb.user_id(602))
    mark = rb.fake.mark()
    again = rb.fake.ask_inline(602, "秋思")
    assert _results(again) == _results(first)
    assert rb.store.count_history(rb.user_id(602)) == n
    assert not rb.fake.find("sendPhoto", since=mark)
    other = rb.fake.ask_inline(603, "秋思")  # another user gets poems of their own
    assert {r["id"] for r in _results(other)}.isdisjoint({r["id"] for r in _results(first)})


def test_forms_acrostics_and_cipai(rb):
    rb.fake.ask_inline(604, "七律 秋兴")
    assert {rec.form for rec in rb.store.history(rb.user_id(604))} == {"七律"}
    rb.fake.ask_inline(605, "藏头 春夏秋冬")
    for rec in rb.store.history(rb.user_id(605)):
        heads = "".join(seg[0] for seg in re.split(r"[，。\n]", rec.text) if seg)
        assert heads == "春夏秋冬"
    rb.fake.ask_inline(606, "浣溪沙 春游")
    assert {rec.cipai for rec in rb.store.history(rb.user_id(606))} == {"浣溪沙"}


def test_typing_on_drops_the_older_query(rb):
    fake = rb.fake
    mark = fake.mark()
    old = fake.inline(607, "春")
    new = fake.inline(607, "春江")
    fake.wait("answerInlineQuery", since=mark, where=lambda c: c.params["inline_query_id"] == new)
    fake.quiet(1.0)
    assert not fake.find("answerInlineQuery", since=mark, where=lambda c: c.params["inline_query_id"] == old)
    assert {rec.request.title for rec in rb.store.history(rb.user_id(607))} == {"春江"}


def test_empty_and_bad_queries_get_a_hint_button_and_no_results(rb):
    users = rb.store.stats()["users"]
    ans = rb.fake.ask_inline(608, "")
    assert _results(ans) == [] and ans.params["button"]["start_parameter"] == "inline"
    assert "春夜" in ans.params["button"]["text"]
    assert rb.store.stats()["users"] == users  # only looking creates no user
    ans = rb.fake.ask_inline(608, "藏头")
    assert _results(ans) == [] and "⚠️" in ans.params["button"]["text"] and ans.params["cache_time"] == 0
    ans = rb.fake.ask_inline(608, "hello")
    assert _results(ans) == [] and "⚠️" in ans.params["button"]["text"]
    assert rb.store.count_history(rb.user_id(608)) == 0


def test_the_rate_link_opens_the_poem_in_the_private_chat(rb):
    ans = rb.fake.ask_inline(609, "雪")
    pid = int(_results(ans)[0]["id"][1:])
    mark = rb.fake.mark()
    rb.fake.send(609, f"/start p{pid}")
    intro, poem = rb.fake.wait("sendMessage", chat_id=609, since=mark, count=2)
    assert "评分" in intro.text and "《雪》" in poem.text
    assert poem.buttons[:5] == [f"r:{pid}:{n}" for n in range(1, 6)]
    mark = rb.fake.mark()
    rb.fake.click(609, poem, f"r:{pid}:4")
    rb.fake.wait("editMessageText", chat_id=609, since=mark)
    assert rb.store.get_poem(pid).rating == 4
    assert "不是你的诗" in rb.fake.ask(610, f"/start p{pid}").text
    assert "不存在" in rb.fake.ask(610, "/start p999999").text


def test_without_a_card_chat_text_results_only_and_the_rate_limit_applies(strict):
    ans = strict.fake.ask_inline(611, "月")
    assert _results(ans) and {r["type"] for r in _results(ans)} == {"article"}
    assert not strict.fake.find("sendPhoto")
    ans = strict.fake.ask_inline(611, "花")  # the burst of 1 is used up
    assert _results(ans) == [] and "🍵" in ans.params["button"]["text"] and ans.params["cache_time"] == 0
    assert {rec.request.title for rec in strict.store.history(strict.user_id(611))} == {"月"}
