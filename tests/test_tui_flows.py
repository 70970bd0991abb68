"""Pilot-driven tests of the terminal app: every screen and flow, and bad input never crashes."""

from __future__ import annotations

import asyncio

from test_tui_support import DENG, GatedPoet, failing_factory, make_app, make_service, settle, type_into
from textual.widgets import DataTable, Input, Log, Select, TextArea

from tui.screens.check import CheckScreen
from tui.screens.cipai_picker import CipaiPicker
from tui.screens.compose import ComposeScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.explain import ExplainScreen
from tui.screens.export import ExportScreen
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen
from tui.screens.model import ModelScreen
from tui.widgets.analysis_view import AnalysisView
from tui.widgets.poem_view import PoemView


def run(coro):
    return asyncio.run(coro)


def test_compose_generate_rate_history_delete(tmp_path):
    svc = make_service(tmp_path)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, ComposeScreen)
            assert app.poet_state == "ready"
            await type_into(pilot, "#title", "春夜")
            await type_into(pilot, "#acrostic", "春江花月")
            await pilot.press("enter")  # Enter in a field writes
            await settle(pilot)
            view = screen.query_one(PoemView)
            assert not screen.busy and screen.error_text == ""
            poem = view.current
            assert poem is not None and poem.poem.form == "七绝"
            rows = [r for r in poem.poem.text.replace("，", "\n").replace("。", "\n").split("\n") if r]
            assert "".join(r[0] for r in rows) == "春江花月"  # the acrostic holds
            assert app.focused is view
            await pilot.press("4")  # rate: shown and stored at once
            await pilot.pause()
            assert view.ratings[poem.id] == 4
            assert "★★★★☆" in str(view.render())
            # the same database the feedback training reads
            rated = svc.store.rated_poems()
            assert [(r.poem_id, r.stars) for r in rated] == [(poem.id, 4)]

            await pilot.press("f4")
            await settle(pilot)
            hist = app.screen
            assert isinstance(hist, HistoryScreen)
            table = hist.query_one(DataTable)
            assert table.row_count == 1
            assert "★★★★☆" in str(table.get_row_at(0)[-1])
            await pilot.press("2")  # re-rate from history
            await pilot.pause()
            assert svc.store.get_poem(poem.id).rating == 2
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle(pilot)
            assert table.row_count == 0
            assert svc.count_history() == 0
            assert svc.store.rated_poems() == []  # its rating went with it

    run(go())


def test_another_explain_vertical_traditional(tmp_path):
    svc = make_service(tmp_path)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            screen.query_one("#form", Select).value = "五绝"
            await pilot.pause()
            await pilot.press("ctrl+r")
            await settle(pilot)
            view = screen.query_one(PoemView)
            first = view.current
            assert first is not None and first.poem.form == "五绝"
            await pilot.press("a")  # another
            await settle(pilot)
            assert view.current.id != first.id
            assert svc.count_history() == 2
            await pilot.press("v")
            assert view.vertical
            await pilot.press("t")
            assert view.traditional
            await pilot.pause()
            await pilot.press("e")
            await pilot.pause()
            assert isinstance(app.screen, ExplainScreen)
            an = app.screen.analysis
            assert an.form == "五绝" and len(an.lines) == 4
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, ComposeScreen)

    run(go())


def test_ci_with_cipai_picker(tmp_path):
    svc = make_service(tmp_path)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            screen.query_one("#form", Select).value = "词"
            await pilot.pause()
            assert not screen.query_one("#cipai", Input).disabled
            await pilot.press("ctrl+r")  # no 词牌 yet: an inline message
            await pilot.pause()
            assert "词牌" in screen.error_text
            await pilot.press("ctrl+p")
            await pilot.pause()
            assert isinstance(app.screen, CipaiPicker)
            for ch in "浣溪":
                await pilot.press(ch)
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen
            assert screen.query_one("#cipai", Input).value == "浣溪沙"
            await pilot.press("ctrl+r")
            await settle(pilot)
            p = screen.query_one(PoemView).current
            assert p is not None and p.poem.cipai == "浣溪沙" and screen.error_text == ""

    run(go())


def test_bad_input_shows_inline_messages(tmp_path):
    svc = make_service(tmp_path)
    cases = [
        ({"#title": "春" * 31}, "too long"),
        ({"#acrostic": "春江花月夜"}, "longer than"),  # 5 heads for 4 lines: impossible
        ({"#acrostic": "abc"}, "Chinese characters only"),
        ({"#first_line": "床前明月"}, "characters"),
        ({"#acrostic": "春", "#first_line": "江上一孤舟"}, "acrostic starts"),
        ({"#n": "0"}, "between 1 and"),
        ({"#n": ""}, "whole number"),
        ({"#temperature": "9"}, "temperature"),
    ]

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            screen.query_one("#form", Select).value = "五绝"
            await pilot.pause()
            for fields, expected in cases:
                for sel in ("#title", "#keywords", "#acrostic", "#first_line"):
                    screen.query_one(sel, Input).value = ""
                screen.query_one("#n", Input).value = "1"
                screen.query_one("#temperature", Input).value = "0.8"
                for sel, value in fields.items():
                    screen.query_one(sel, Input).value = value
                await pilot.press("ctrl+r")
                await pilot.pause()
                assert expected in screen.error_text, (fields, screen.error_text)
                assert not screen.busy
            assert svc.count_history() == 0
            # a good request clears the message
            screen.query_one("#n", Input).value = "1"
            screen.query_one("#temperature", Input).value = "0.8"
            screen.query_one("#acrostic", Input).value = ""
            screen.query_one("#first_line", Input).value = ""
            await pilot.press("ctrl+r")
            await settle(pilot)
            assert screen.error_text == "" and svc.count_history() == 1

    run(go())


def test_busy_state_and_cancel(tmp_path):
    gated = GatedPoet()
    svc = make_service(tmp_path, poet_factory=lambda: gated)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert screen.busy
            assert screen.query_one("#busy-bar").display
            assert "writing" in str(screen.query_one("#status").content)
            await pilot.press("ctrl+r")  # a second request while busy: a message, not a second worker
            await pilot.pause()
            assert "Esc" in screen.error_text
            await pilot.press("escape")  # the UI is free at once
            await pilot.pause()
            assert not screen.busy and "cancelled" in str(screen.query_one("#status").content)
            gated.gate.set()
            await settle(pilot)
            assert screen.query_one(PoemView).current is None  # the late result is dropped
            assert svc.count_history() == 0  # and not stored
            await pilot.press("ctrl+r")  # and the next one works
            await settle(pilot)
            assert screen.query_one(PoemView).current is not None

    run(go())


def test_model_load_failure_is_a_message(tmp_path):
    svc = make_service(tmp_path, poet_factory=failing_factory(), load=False)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            assert app.poet_state == "failed"
            assert "no model at /nowhere" in screen.error_text
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert "Cannot write poems" in screen.error_text
            await pilot.press("f3")  # the checker still works without a model
            await pilot.pause()
            check = app.screen
            assert isinstance(check, CheckScreen)
            check.query_one(TextArea).text = DENG
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert check.query_one(AnalysisView).analysis is not None, check.error_text
            assert check.query_one(AnalysisView).analysis.form == "五绝"

    run(go())


def test_loading_state_then_ready(tmp_path):
    import threading

    gate = threading.Event()

    def slow_factory():
        from test_tui_support import tiny

        gate.wait(30)
        return tiny()

    svc = make_service(tmp_path, poet_factory=slow_factory, load=False)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert app.poet_state == "loading"
            assert "loading the model" in str(screen.query_one("#status").content)
            gate.set()
            await settle(pilot)
            assert app.poet_state == "ready"
            assert "tiny-0" in str(screen.query_one("#status").content)

    run(go())


def test_check_screen(tmp_path):
    svc = make_service(tmp_path, load=False, poet_factory=failing_factory())

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("f3")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, CheckScreen)
            view = screen.query_one(AnalysisView)
            await pilot.press("ctrl+r")  # empty
            await pilot.pause()
            assert "empty" in screen.error_text and view.analysis is None
            for bad, expected in (("hello world", "not a Chinese poem"), ("春" * 2001, "too long"),
                                  ("，。，。", "no Chinese characters")):
                screen.query_one(TextArea).text = bad
                await pilot.press("ctrl+r")
                await pilot.pause()
                assert expected in screen.error_text, (bad[:10], screen.error_text)
            ta = screen.query_one(TextArea)
            ta.text = ""
            ta.focus()
            await pilot.press(*"床前明月光")  # typed, too
            screen.query_one(TextArea).text = DENG
            await pilot.press("ctrl+r")
            await pilot.pause()
            an = view.analysis
            assert screen.error_text == "" and an.form == "五绝" and an.rhyme_ok
            assert an.lines[1].chars[-1].is_rhyme_pos and an.lines[1].chars[-1].rhyme_group
            # violations are listed
            from test_tui_support import JINGYESI

            from tui.widgets.analysis_view import violations

            ta.text = JINGYESI
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert any("失粘" in v for v in violations(view.analysis))
            # a 词 against its 词牌
            ta.text = "一曲新词酒一杯，去年天气旧亭台，夕阳西下几时回。无可奈何花落去，似曾相识燕归来，小园香径独徘徊。"
            screen.query_one("#check-cipai", Input).value = "浣溪沙"
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert view.analysis.cipai == "浣溪沙"
            # a rare reading is named, with its figure; a variant is shown as written
            screen.query_one("#check-cipai", Input).value = ""
            ta.text = "高阁清凉秋复深，几人闲倚画楼中。\n寒山欲锁千峰岫，啼鸟何时万壑风。\n" \
                      "一炷晴岚生石径，半开幽谷度花丛。\n十年猿鹤心如土，须把孤灯问梦空。"
            await pilot.press("ctrl+r")
            await pilot.pause()
            from rich.console import Console

            from tui.widgets.analysis_view import render_analysis

            con = Console(width=100, record=True)
            con.print(render_analysis(view.analysis))
            shown = con.export_text()
            assert "罕见读音" in shown and "「深」" in shown and "9,248" in shown
            assert view.analysis.rare_readings[0].char == "深"
            screen.query_one("#check-cipai", Input).value = "不存在的牌"
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert "unknown 词牌" in screen.error_text

    run(go())


def test_history_search_export(tmp_path):
    svc = make_service(tmp_path)
    from core.types import PoemRequest

    for title in ("春夜", "秋思", "春晓"):
        svc.write(PoemRequest(form="五绝", title=title))

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("f4")
            await settle(pilot)
            screen = app.screen
            table = screen.query_one(DataTable)
            assert table.row_count == 3
            await pilot.press("slash")
            for ch in "春":
                await pilot.press(ch)
            await pilot.press("enter")
            await pilot.pause()
            assert table.row_count == 2 and app.focused is table
            await pilot.press("e")
            await pilot.pause()
            assert isinstance(app.screen, ExplainScreen)
            await pilot.press("escape")
            await pilot.pause()
            for fmt, name in (("markdown", "out.md"), ("text", "out.txt")):
                await pilot.press("x")
                await pilot.pause()
                assert isinstance(app.screen, ExportScreen)
                if fmt == "text":
                    app.screen.query_one("#fmt-text").value = True
                    await pilot.pause()
                app.screen.query_one("#export-path", Input).value = str(tmp_path / name)
                app.screen.query_one("#export-path", Input).focus()
                await pilot.press("enter")
                await pilot.pause()
                out = (tmp_path / name).read_text("utf-8")
                assert "春夜" in out and "春晓" in out and "秋思" not in out
                assert out.startswith("# Shiren") == (fmt == "markdown")

    run(go())


def test_help_screen(tmp_path):
    svc = make_service(tmp_path)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, ComposeScreen)

    run(go())


def test_model_screen_retrain_promote_rollback(tmp_path):
    calls = []

    def fake_retrain(progress):
        calls.append(1)
        for i in range(1, 5):
            progress(i / 4, f"step {i}/4 loss {1.0 / i:.2f}")
        svc.store.add_adapter("fb-2", str(tmp_path / "fb-2"), "fb-1", {"reward": 0.71, "pairs": 12})
        return {"adapter": "fb-2", "reward": 0.71}

    svc = make_service(tmp_path, retrain=fake_retrain)
    svc.store.add_adapter("fb-1", str(tmp_path / "fb-1"), None, {"reward": 0.5}, status="active")

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("f5")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ModelScreen)
            await pilot.press("r")
            await settle(pilot)
            assert calls == [1]
            log = "\n".join(screen.query_one(Log).lines)
            assert "step 4/4" in log and "done" in log
            assert screen.query_one("#train-bar").progress == 1.0
            table = screen.query_one("#adapter-table", DataTable)
            assert table.row_count == 2
            table.move_cursor(row=table.get_row_index("fb-2"))
            await pilot.press("p")
            await pilot.pause()
            assert svc.store.active_adapter().name == "fb-2"
            await pilot.press("b")
            await pilot.pause()
            assert svc.store.active_adapter().name == "fb-1"

    run(go())


def test_model_screen_without_training(tmp_path):
    svc = make_service(tmp_path)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("f5")
            await pilot.pause()
            screen = app.screen
            assert "not available" in str(screen.query_one("#model-train-status").content)
            await pilot.press("r")  # nothing happens, nothing breaks
            await pilot.press("b")  # nothing to roll back to
            await pilot.press("p")
            await pilot.pause()
            assert app.screen is screen

    run(go())
