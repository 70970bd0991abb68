"""✏️ under a poem, the line picker and /revise: a linked revision that keeps every 格律 guarantee."""

from __future__ import annotations

import pytest
from fake_telegram import RunningBot, poem_id
from test_generate import assert_guarantees

from core.revise import clauses


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    with RunningBot(tmp_path_factory.mktemp("bot_revise")) as rb:
        yield rb


def poem_text(rb, pid: int) -> str:
    return rb.store.get_poem(pid).text


def test_pencil_then_line_picker_rewrites_that_line(rb):
    fake = rb.fake
    p = rb.poem(301, "秋")
    pid = poem_id(p)
    mark = fake.mark()
    ans = fake.click(301, p, f"e:{pid}")
    assert ans.params.get("text") in (None, "")
    picker = fake.wait("sendMessage", chat_id=301, since=mark)[0]
    assert picker.buttons == [f"ev:{pid}:{n}" for n in range(1, 5)]  # a 七绝: four lines
    mark = fake.mark()
    fake.click(301, picker, f"ev:{pid}:3")
    new = fake.wait("sendMessage", chat_id=301, since=mark, timeout=60)[0]
    nid = poem_id(new)
    rec = rb.store.get_poem(nid)
    assert rec.revised_from == pid and nid != pid and f"#{pid}" in new.text
    old, got = clauses(poem_text(rb, pid)), clauses(rec.text)
    assert [i for i in range(4) if old[i] != got[i]] == [2]
    assert_guarantees(rb.store.get_poem(pid).request, rec.text)
    assert new.buttons[:5] == [f"r:{nid}:{n}" for n in range(1, 6)]  # rate the revision too


def test_revise_command_and_refusals(rb):
    fake = rb.fake
    p = rb.poem(302, "山")
    pid = poem_id(p)
    assert "/revise" in fake.ask(302, "/revise").text
    picker = fake.ask(302, f"/revise {pid}")
    assert picker.buttons[0] == f"ev:{pid}:1"
    mark = fake.mark()
    fake.send(302, f"/revise {pid} 1")
    new = fake.wait("sendMessage", chat_id=302, since=mark, timeout=60)[0]
    assert rb.store.get_poem(poem_id(new)).revised_from == pid
    assert "⚠️" in fake.ask(302, f"/revise {pid} 9").text  # no line 9: a reason, not a traceback
    assert "不是你的诗" in fake.ask(303, f"/revise {pid} 1").text


def test_someone_elses_pencil_is_refused(rb):
    fake = rb.fake
    p = rb.poem(304, "水")
    ans = fake.click(305, p, f"ev:{poem_id(p)}:1")
    assert ans.params.get("show_alert")
