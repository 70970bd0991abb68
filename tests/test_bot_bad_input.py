"""End to end: bad input, forged and stale buttons, groups, busy and rate limits, the error handler,
and the token never reaching the logs."""

from __future__ import annotations

import io
import logging

import pytest
from fake_telegram import TOKEN, RunningBot, poem_id
from telegram import Update
from telegram.ext import CommandHandler


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    with RunningBot(tmp_path_factory.mktemp("bot_bad"), rate_burst=3, rate_per_minute=0.5) as rb:
        yield rb


@pytest.fixture(scope="module")
def victim(rb):
    """User 301's poem, rated 4; other users try to touch it."""
    p = rb.poem(301, "秋")
    pid = poem_id(p)
    rb.fake.click(301, p, f"r:{pid}:4")
    rb.fake.quiet(0.3)
    return p, pid


def test_cannot_rate_another_users_poem(rb, victim):
    p, pid = victim
    ans = rb.fake.click(302, p, f"r:{pid}:1")
    assert "不是你的诗" in ans.params["text"] and ans.params.get("show_alert")
    assert rb.store.get_poem(pid).rating == 4
    assert rb.store.stats()["ratings"] == 1


def test_cannot_delete_regenerate_or_explain_another_users_poem(rb, victim):
    p, pid = victim
    mark = rb.fake.mark()
    for data in (f"d:{pid}", f"a:{pid}", f"x:{pid}"):
        ans = rb.fake.click(302, p, data)
        assert "不是你的诗" in ans.params["text"]
    assert rb.store.get_poem(pid) is not None
    assert not rb.fake.find("sendMessage", since=mark)
    assert not rb.fake.find("editMessageText", since=mark)


@pytest.mark.parametrize("data", ["r:abc:3", "r:1:9", "r:1:0", "r:", "r:99999:3", "a:x", "x:", "d:-1",
                                  "pf:deadbeef:七绝", "pc:nope:浣溪沙", "s:f:排律", "s:x:1", "h:x", "cb:abc",
                                  "cp:不存在", "fg:y:forged", "wl:fr", "zz", "r:1:2:3"])
def test_forged_or_stale_callback_data_is_answered_and_ignored(rb, victim, data):
    p, pid = victim
    mark = rb.fake.mark()
    ans = rb.fake.click(303, p, data)
    assert ans.params.get("text")  # a short explanation, never a crash
    rb.fake.quiet(0.2)
    assert not rb.fake.find("sendMessage", since=mark)
    assert rb.store.get_poem(pid).rating == 4


def test_overlong_message(rb):
    r = rb.fake.ask(304, "长" * 400)
    assert "太长" in r.text and not r.buttons
    r = rb.fake.ask(304, "春" * 40)
    assert "题目太长" in r.text
    r = rb.fake.ask(304, "/check " + "床前明月光，" * 80)
    assert "太长" in r.text


@pytest.mark.parametrize("kind", ["sticker", "photo", "voice"])
def test_non_text_messages(rb, kind):
    mark = rb.fake.mark()
    getattr(rb.fake, f"send_{kind}")(305)
    r = rb.fake.wait("sendMessage", chat_id=305, since=mark)[0]
    assert "只读文字" in r.text


def test_unknown_command(rb):
    assert "未知命令" in rb.fake.ask(306, "/frobnicate").text
    assert "未知命令" in rb.fake.ask(306, "/poemx").text


def test_commands_in_groups(rb):
    group = -100777
    r = rb.fake.ask(307, "/poem 春", chat_id=group)
    assert "私聊" in r.text and not r.buttons
    r = rb.fake.ask(307, f"/start@{rb.harness.app.bot.username}", chat_id=group)
    assert "私聊" in r.text
    mark = rb.fake.mark()
    rb.fake.send(307, "/start@some_other_bot", chat_id=group)  # not for us
    rb.fake.send(307, "春夜", chat_id=group)  # chatter
    assert not rb.fake.quiet(0.6, since=mark)
    assert rb.store.stats()["poems"] == 1  # only the victim's


def test_edited_messages_are_ignored(rb):
    msg = rb.fake.send(308, "/help")
    rb.fake.wait("sendMessage", chat_id=308)
    mark = rb.fake.mark()
    rb.fake.edit(308, msg, "春")
    assert not rb.fake.quiet(0.6, since=mark)


def test_bad_request_gets_the_reason(rb):
    r = rb.fake.ask(309, "/acrostic abc")
    assert "⚠️" in r.text and "Chinese" in r.text
    assert "8" in rb.fake.ask(309, "/acrostic 一二三四五六七八九").text


def test_busy_when_the_global_cap_is_full(rb):
    cap = rb.bot_data["cap"]
    saved = cap.limit
    cap.limit = 0  # every slot taken
    try:
        r = rb.fake.ask(310, "山")
        assert "正忙" in r.text and not r.buttons
    finally:
        cap.limit = saved
    rb.poem(310, "山")  # and it works again (the refused request did not cost a rate token)


def test_per_user_rate_limit(rb):
    limiter = rb.bot_data["limiter"]
    for _ in range(3):  # burst of 3 used up (rate 0.5/min: no refill during the test), in the database
        assert rb.store.take_token(rb.user_id(311), limiter.burst, limiter.per_minute) == 0.0
    r = rb.fake.ask(311, "水")
    assert "请慢一点" in r.text and not r.buttons
    assert "命令" in rb.fake.ask(311, "/help").text  # cheap commands are not limited
    rb.poem(312, "水")  # other users are not affected


def test_error_handler_apologises_and_logs_the_traceback(rb, caplog):
    async def boom(update: Update, context) -> None:
        raise RuntimeError("kaboom")

    rb.harness.app.add_handler(CommandHandler("boom", boom), group=-1)
    with caplog.at_level(logging.ERROR, logger="bot.errors"):
        r = rb.fake.ask(313, "/boom")
        assert "抱歉" in r.text
        rb.fake.quiet(0.2)
    assert any(rec.exc_info and "kaboom" in str(rec.exc_info[1]) for rec in caplog.records)
    assert "已评" not in r.text
    assert "命令" in rb.fake.ask(313, "/help").text  # still alive


def test_token_never_in_logs(tmp_path):
    from bot.app import install_log_redaction

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        install_log_redaction(TOKEN, handlers=[handler])
        with RunningBot(tmp_path) as rb2:
            rb2.fake.ask(314, "/help")
            logging.getLogger("bot").error("boom at %s", rb2.fake.api_url.format(token=TOKEN))
            try:
                raise ValueError(f"bad url https://api.telegram.org/bot{TOKEN}/getMe")
            except ValueError:
                logging.getLogger("telegram.ext.Updater").exception("failed")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    out = buf.getvalue()
    assert "Set Bot API URL" in out  # PTB logged its URL at DEBUG …
    assert TOKEN not in out and TOKEN.split(":")[1] not in out  # … without the token
    assert "<token>" in out
    assert logging.getLogger("httpx").level == logging.WARNING
