"""Check my poem: type or paste a poem, see the 格律 analysis."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, TextArea

from core.types import ShirenError
from tui.widgets.analysis_view import AnalysisView
from tui.widgets.nav_bar import NavBar

if TYPE_CHECKING:
    from tui.service import ShirenService

CHECK_FORMS = ("五绝", "七绝", "五律", "七律", "排律")


class CheckScreen(Screen):
    BINDINGS = [Binding("ctrl+r", "check", "check", priority=True)]

    @property
    def service(self) -> ShirenService:
        return self.app.service  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield NavBar("check")
        with Horizontal(id="check-main"):
            with Vertical(id="check-form"):
                yield Label("Your poem (lines or ，。):", classes="pane-title")
                yield TextArea(id="check-text", soft_wrap=True, show_line_numbers=False)
                with Horizontal(classes="field"):
                    yield Label("form 体", classes="field-label")
                    yield Select([(f, f) for f in CHECK_FORMS], prompt="auto", id="check-form-select",
                                 compact=True)
                with Horizontal(classes="field"):
                    yield Label("词牌", classes="field-label")
                    yield Input(placeholder="for a 词, e.g. 浣溪沙", id="check-cipai", compact=True)
                with Horizontal(classes="buttons"):
                    yield Button("Check ^R", id="check-go", variant="primary", compact=True)
                    yield Button("Clear", id="check-clear", compact=True)
                yield Static("", id="check-error", classes="error")
            yield AnalysisView("The analysis shows here: each character coloured by 平/仄, "
                               "the rhyme at each 韵脚, and every violation.", id="check-analysis")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#check-text", TextArea).focus()

    @property
    def error_text(self) -> str:
        return str(self.query_one("#check-error", Static).content)

    def action_check(self) -> None:
        text = self.query_one("#check-text", TextArea).text
        form = self.query_one("#check-form-select", Select).value
        form_s = str(form) if isinstance(form, str) else None  # Select.NULL: auto
        cipai = self.query_one("#check-cipai", Input).value.strip()
        err = self.query_one("#check-error", Static)
        try:
            an = self.service.check(text, form_s if not cipai else None, cipai or None)
        except ShirenError as e:
            err.update(str(e))
            self.query_one(AnalysisView).show(None)
            return
        except Exception as e:  # noqa: BLE001 — the checker must never take the app down
            err.update(f"could not analyse this text: {e}")
            return
        err.update("")
        self.query_one(AnalysisView).show(an)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_check()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "check-go":
            self.action_check()
        else:
            self.query_one("#check-text", TextArea).text = ""
            self.query_one("#check-error", Static).update("")
            self.query_one(AnalysisView).show(None)
            self.query_one("#check-text", TextArea).focus()
