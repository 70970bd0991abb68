"""The app's rewrite key: w on the poem pane → a line picker → the revision, stored and linked."""

from __future__ import annotations

import asyncio

from test_tui_support import make_app, make_service, settle

from core.revise import clauses
from tui.screens.compose import ComposeScreen
from tui.screens.explain import ExplainScreen
from tui.screens.line_picker import LinePicker
from tui.widgets.poem_view import PoemView


def test_rewrite_a_line_from_the_poem_pane(tmp_path):
    svc = make_service(tmp_path)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            screen = app.screen
            await pilot.press("ctrl+r")
            await settle(pilot)
            view = screen.query_one(PoemView)
            first = view.current
            view.focus()
            await pilot.pause()
            await pilot.press("e")  # explain shows the critic's doubts
            await pilot.pause()
            assert isinstance(app.screen, ExplainScreen) and "the critic doubts" in str(
                app.screen.query_one("#explain-doubts").content)
            await pilot.press("escape")
            await pilot.pause()
            await pilot.press("w")
            await pilot.pause()
            assert isinstance(app.screen, LinePicker)
            await pilot.press("down", "enter")  # line 2
            await settle(pilot)
            assert isinstance(app.screen, ComposeScreen) and screen.error_text == ""
            new = view.current
            assert new.id != first.id and svc.store.get_poem(new.id).revised_from == first.id
            old, got = clauses(first.poem.text), clauses(new.poem.text)
            assert [i for i in range(len(old)) if old[i] != got[i]] == [1]
            assert new.poem.scores["revised"] == {"line": 2}

    asyncio.run(go())
