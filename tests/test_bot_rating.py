"""End to end: rating and re-rating, deleting, /history paging and search, /forget."""

from __future__ import annotations

import pytest
from fake_telegram import RunningBot, poem_id

from core.types import Poem, PoemRequest


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    with RunningBot(tmp_path_factory.mktemp("bot_rate"), history_page_size=5) as rb:
        yield rb


def test_rating_is_stored_at_once_and_shown(rb):
    fake = rb.fake
    p = rb.poem(201, "月")
    pid = poem_id(p)
    mark = fake.mark()
    ans = fake.click(201, p, f"r:{pid}:4")
    assert "4" in ans.params.get("text", "")
    assert rb.store.get_poem(pid).rating == 4  # stored before the answer went out
    e = fake.wait("editMessageText", chat_id=201, since=mark)[0]
    assert "★★★★☆" in e.text and f"r:{pid}:4" in e.buttons
    assert any(b["text"].startswith("✅4") for b in e.params["reply_markup"]["inline_keyboard"][0])
    # re-rating changes the one rating
    mark = fake.mark()
    fake.click(201, p, f"r:{pid}:2")
    e = fake.wait("editMessageText", chat_id=201, since=mark)[0]
    assert "★★☆☆☆" in e.text
    assert rb.store.get_poem(pid).rating == 2
    assert rb.store.stats()["ratings"] == 1
    # the same stars again: answered, no error, still one rating
    mark = fake.mark()
    fake.click(201, p, f"r:{pid}:2")
    assert not fake.find("sendMessage", chat_id=201, since=mark)  # no apology
    assert rb.store.get_poem(pid).rating == 2 and rb.store.stats()["ratings"] == 1


def test_delete_button_deletes_own_poem(rb):
    fake = rb.fake
    p = rb.poem(202, "风")
    pid = poem_id(p)
    mark = fake.mark()
    fake.click(202, p, f"d:{pid}")
    e = fake.wait("editMessageText", chat_id=202, since=mark)[0]
    assert "已删除" in e.text and not e.buttons
    assert rb.store.get_poem(pid) is None
    ans = fake.click(202, p, f"r:{pid}:5")  # the old keyboard is now stale
    assert "不存在" in ans.params["text"]


def _seed_poems(rb, tg_user: int, n: int) -> list[int]:
    uid = rb.user_id(tg_user)
    ids = []
    for i in range(n):
        req = PoemRequest(form="五绝", title=f"题{i}")
        ids += rb.store.record_poems(uid, req, [Poem(text=f"白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼{i}。",
                                                     form="五绝", title=f"题{i}", model_version="t")])
    return ids


def test_history_is_paged_with_ratings(rb):
    fake = rb.fake
    assert "还没有诗" in fake.ask(203, "/history").text
    ids = _seed_poems(rb, 203, 7)
    rb.store.rate(rb.user_id(203), ids[-1], 5)
    r = fake.ask(203, "/history")
    assert "共 7 首" in r.text and "第 1/2 页" in r.text
    assert f"#{ids[-1]}" in r.text and "★★★★★" in r.text and "未评分" in r.text
    assert f"#{ids[0]}" not in r.text
    assert r.buttons == ["h:2"]
    mark = fake.mark()
    fake.click(203, r, "h:2")
    e = fake.wait("editMessageText", chat_id=203, since=mark)[0]
    assert "第 2/2 页" in e.text and f"#{ids[0]}" in e.text and e.buttons == ["h:1"]
    # a page past the end shows the last page
    mark = fake.mark()
    fake.click(203, e, "h:99")
    fake.quiet(0.5)  # same content: "not modified" is swallowed, nothing is sent
    assert not fake.find("sendMessage", chat_id=203, since=mark)


def test_history_search(rb):
    ids = _seed_poems(rb, 204, 3)
    r = rb.fake.ask(204, "/history 题1")
    assert "共 1 首" in r.text and f"#{ids[1]}" in r.text


def test_history_shows_only_own_poems(rb):
    _seed_poems(rb, 205, 2)
    r = rb.fake.ask(206, "/history")
    assert "还没有诗" in r.text


def test_forget_after_confirmation(rb):
    fake = rb.fake
    p = rb.poem(207, "花")
    pid = poem_id(p)
    rated = fake.mark()
    fake.click(207, p, f"r:{pid}:3")
    # The rating re-draws the poem message after answering the button: wait for that edit, so it is
    # not mistaken below for the edit that answers /forget.
    fake.wait("editMessageText", chat_id=207, since=rated, where=lambda c: "你的评分" in c.text)
    uid = rb.user_id(207)
    # cancel keeps everything
    r = fake.ask(207, "/forget")
    yes, no = r.buttons
    assert yes.startswith("fg:y:") and no.startswith("fg:n:")
    mark = fake.mark()
    fake.click(207, r, no)
    assert "取消" in fake.wait("editMessageText", chat_id=207, since=mark)[0].text
    assert rb.store.get_poem(pid) is not None
    ans = fake.click(207, r, yes)  # that confirmation was used up
    assert "过期" in ans.params["text"]
    assert rb.store.get_poem(pid) is not None
    # confirm deletes everything
    r = fake.ask(207, "/forget")
    mark = fake.mark()
    fake.click(207, r, r.buttons[0])
    assert "已删除" in fake.wait("editMessageText", chat_id=207, since=mark)[0].text
    assert rb.store.get_poem(pid) is None
    assert rb.store.count_history(uid) == 0
    with pytest.raises(LookupError):
        rb.store.get_settings(uid)
    # the user can start afresh
    assert "还没有诗" in fake.ask(207, "/history").text
