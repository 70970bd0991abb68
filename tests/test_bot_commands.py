"""End to end: every user command and poem button, through the real PTB Application and a fake Bot API."""

from __future__ import annotations

import re

import pytest
from fake_telegram import RunningBot, poem_id

from core.gelv import analyze


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    with RunningBot(tmp_path_factory.mktemp("bot_cmd"), admin_ids=frozenset({1})) as rb:
        yield rb


def poem_lines(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if len(ln) >= 5 and re.fullmatch(r"[\u4e00-\u9fff，。？！；、]+", ln)]


def test_start_is_chinese_with_an_english_button(rb):
    fake = rb.fake
    r = fake.ask(101, "/start")
    assert "诗人" in r.text and r.buttons == ["wl:en"]
    mark = fake.mark()
    fake.click(101, r, "wl:en")
    e = fake.wait("editMessageText", chat_id=101, since=mark)[0]
    assert "classical Chinese poetry companion" in e.text and e.buttons == ["wl:zh"]
    assert rb.store.get_settings(rb.user_id(101)).lang == "en"
    assert "Commands" in fake.ask(101, "/help").text


def test_help_lists_commands_and_admin_commands_only_for_admins(rb):
    text = rb.fake.ask(102, "/help").text
    for cmd in ("/poem", "/acrostic", "/ci", "/continue", "/check", "/settings", "/history", "/forget"):
        assert cmd in text
    assert "/stats" not in text
    assert "/stats" in rb.fake.ask(1, "/help").text


def test_bot_published_its_command_list(rb):
    assert {c["command"] for c in rb.fake.commands} >= {"start", "help", "poem", "check", "forget"}


def test_plain_text_writes_a_poem_in_the_default_form_with_typing(rb):
    mark = rb.fake.mark()
    r = rb.poem(103, "春夜")
    assert "《春夜》" in r.text and "七绝" in r.text
    lines = poem_lines(r.text)
    assert len(lines) == 2 and all(len(ln) == 16 for ln in lines)  # 2 × (7，7。)
    assert rb.fake.find("sendChatAction", chat_id=103, since=mark)
    assert r.buttons[:5] == [f"r:{poem_id(r)}:{n}" for n in range(1, 6)]
    assert r.buttons[5:] == [f"a:{poem_id(r)}", f"x:{poem_id(r)}", f"c:{poem_id(r)}", f"e:{poem_id(r)}",
                            f"d:{poem_id(r)}"]
    rec = rb.store.get_poem(poem_id(r))
    assert rec.user_id == rb.user_id(103) and rec.request.title == "春夜"


def test_poem_command_offers_forms_then_writes_the_chosen_one(rb):
    fake = rb.fake
    r = fake.ask(104, "/poem 秋思")
    forms = [b.rsplit(":", 1)[1] for b in r.buttons]
    assert forms == ["五绝", "七绝", "五律", "七律", "词"]
    mark = fake.mark()
    fake.click(104, r, r.buttons[0])  # 五绝
    p = fake.wait("sendMessage", chat_id=104, since=mark)[0]
    assert "五绝" in p.text and "《秋思》" in p.text
    assert all(len(ln) == 12 for ln in poem_lines(p.text))
    # 词: the picker turns into a 词牌 choice, then a 词 comes
    mark = fake.mark()
    fake.click(104, r, r.buttons[4])
    e = fake.wait("editMessageText", chat_id=104, since=mark)[0]
    assert e.buttons and all(b.startswith("pc:") for b in e.buttons)
    choice = next(b for b in e.buttons if b.endswith(":浣溪沙"))
    mark = fake.mark()
    fake.click(104, e, choice)
    p = fake.wait("sendMessage", chat_id=104, since=mark)[0]
    assert "浣溪沙" in p.text and rb.store.get_poem(poem_id(p)).cipai == "浣溪沙"


def test_poem_command_with_a_form_writes_at_once(rb):
    r = rb.fake.ask(104, "/poem 五律 山居")
    assert "五律" in r.text and len(poem_lines(r.text)) == 4


def test_acrostic(rb):
    r = rb.fake.ask(105, "/acrostic 春夏秋冬")
    lines = poem_lines(r.text)
    heads = "".join(seg[0] for ln in lines for seg in re.split(r"[，。]", ln) if seg)
    assert heads == "春夏秋冬"
    assert "/acrostic" in rb.fake.ask(105, "/acrostic").text  # usage


def test_ci_with_cipai_and_topic(rb):
    r = rb.fake.ask(106, "/ci 浣溪沙 春游")
    assert "浣溪沙·春游" in r.text
    rec = rb.store.get_poem(poem_id(r))
    assert rec.form == "词" and rec.cipai == "浣溪沙"
    assert analyze(rec.text, cipai="浣溪沙").format_ok


def test_ci_unknown_cipai_suggests(rb):
    r = rb.fake.ask(106, "/ci 浣溪溪")
    assert "⚠️" in r.text and "浣溪沙" in r.text and not r.buttons


def test_ci_browse_show_and_write(rb):
    fake = rb.fake
    r = fake.ask(107, "/ci")
    assert "词牌" in r.text and "cp:浣溪沙" in r.buttons and "cb:2" in r.buttons
    mark = fake.mark()
    fake.click(107, r, "cb:2")
    e = fake.wait("editMessageText", chat_id=107, since=mark)[0]
    assert "cb:1" in e.buttons and "cp:浣溪沙" not in e.buttons
    mark = fake.mark()
    fake.click(107, r, "cp:浣溪沙")
    shown = fake.wait("sendMessage", chat_id=107, since=mark)[0]
    assert "浣溪沙" in shown.text and "韵" in shown.text and shown.buttons == ["cw:浣溪沙"]
    mark = fake.mark()
    fake.click(107, shown, "cw:浣溪沙")
    p = fake.wait("sendMessage", chat_id=107, since=mark)[0]
    assert rb.store.get_poem(poem_id(p)).cipai == "浣溪沙"


def test_continue_from_a_first_line(rb):
    r = rb.fake.ask(108, "/continue 白日依山尽")
    assert poem_lines(r.text)[0].startswith("白日依山尽，")
    assert "五绝" in r.text
    assert "4" in rb.fake.ask(108, "/continue 白日依山").text
    assert "/continue" in rb.fake.ask(108, "/continue").text


def test_check_a_poem_given_inline(rb):
    r = rb.fake.ask(109, "/check 床前明月光，疑是地上霜。\n举头望明月，低头思故乡。")
    assert "五绝" in r.text and "不合律" in r.text and "平平" in r.text
    assert "<pre>" in r.html and "七阳" in r.text and "失粘" in r.text
    assert r.reply_to is not None


def test_check_names_a_rare_reading_and_keeps_the_users_variant(rb):
    poem = ("高阁清凉秋复深，几人闲倚画楼中。\n寒山欲锁千峰岫，啼鸟何时万壑风。\n"
            "一炷晴岚生石径，半开幽谷度花丛。\n十年猿鹤心疎土，须把孤灯问梦空。")
    r = rb.fake.ask(109, f"/check {poem}")
    assert "罕见读音" in r.text and "「深」读仄声" in r.text and "9,248" in r.text
    assert "疎" in r.text and "异体字：疎（疏）" in r.text


def test_check_with_a_cipai_hint(rb):
    text = "一曲新词酒一杯，去年天气旧亭台，夕阳西下几时回。无可奈何花落去，似曾相识燕归来，小园香径独徘徊。"
    r = rb.fake.ask(109, f"/check 浣溪沙 {text}")
    assert "浣溪沙" in r.text


def test_check_by_replying_to_a_poem(rb):
    p = rb.poem(110, "江")
    r = rb.fake.ask(110, "/check", reply_to=p.result)
    assert "七绝" in r.text and ("合律" in r.text)


def test_check_usage_and_garbage(rb):
    assert "/check" in rb.fake.ask(110, "/check").text
    assert "⚠️" in rb.fake.ask(110, "/check hello world").text


def test_explain_and_another_buttons(rb):
    fake = rb.fake
    p = rb.poem(111, "雪")
    pid = poem_id(p)
    mark = fake.mark()
    fake.click(111, p, f"x:{pid}")
    ex = fake.wait("sendMessage", chat_id=111, since=mark)[0]
    assert "七绝" in ex.text and "合律" in ex.text and ex.reply_to == p.result["message_id"]
    assert "评点" in ex.text  # the critic's doubted characters
    mark = fake.mark()
    fake.click(111, p, f"a:{pid}")
    again = fake.wait("sendMessage", chat_id=111, since=mark)[0]
    pid2 = poem_id(again)
    assert pid2 != pid
    rec, rec2 = rb.store.get_poem(pid), rb.store.get_poem(pid2)
    assert rec2.request.title == rec.request.title == "雪" and rec2.form == rec.form


def test_settings_default_form_script_and_language(rb):
    fake = rb.fake
    r = fake.ask(112, "/settings")
    assert "七绝" in r.text and "s:f:五绝" in r.buttons
    mark = fake.mark()
    fake.click(112, r, "s:f:五绝")
    e = fake.wait("editMessageText", chat_id=112, since=mark)[0]
    assert "默认诗体：五绝" in e.text
    assert rb.store.get_settings(rb.user_id(112)).default_form == "五绝"
    p = rb.poem(112, "夜")
    assert "五绝" in p.text
    # traditional display
    mark = fake.mark()
    fake.click(112, e, "s:s:traditional")
    fake.wait("editMessageText", chat_id=112, since=mark)
    p = fake.ask(112, "/continue 白日依山尽")
    assert "白日依山盡" in p.text
    assert rb.store.get_poem(poem_id(p)).text.startswith("白日依山尽")  # stored simplified


def test_default_form_ci_uses_a_common_cipai(rb):
    fake = rb.fake
    r = fake.ask(113, "/settings")
    mark = fake.mark()
    fake.click(113, r, "s:f:词")
    fake.wait("editMessageText", chat_id=113, since=mark)
    p = rb.poem(113, "春")
    assert rb.store.get_poem(poem_id(p)).form == "词"
