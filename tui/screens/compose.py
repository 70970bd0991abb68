"""The compose screen: the request form on the left, the poem large and centred on the right."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, ProgressBar, Select, Static
from textual.worker import get_current_worker

from core.script import to_traditional
from core.types import DEFAULT_TEMPERATURE, FORMS, PoemRequest, ShirenError
from tui.screens.cipai_picker import CipaiPicker
from tui.screens.explain import ExplainScreen
from tui.service import StoredPoem, poem_heading
from tui.widgets.nav_bar import NavBar
from tui.widgets.poem_view import PoemView

if TYPE_CHECKING:
    from tui.service import ShirenService

FIELDS = (
    ("title", "title 题", "topic, e.g. 春夜"),
    ("keywords", "keywords", "e.g. 月 江"),
    ("acrostic", "acrostic", "藏头, e.g. 春江花月"),
    ("first_line", "1st line", "首句 (5 or 7 chars)"),
)


class ComposeScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "write", "write", priority=True),
        Binding("escape", "cancel", "cancel"),
        Binding("ctrl+p", "pick_cipai", "词牌", priority=True),
    ]

    class Written(Message):
        def __init__(self, poems: list[StoredPoem], token: int) -> None:
            super().__init__()
            self.poems = poems
            self.token = token

    class WriteFailed(Message):
        def __init__(self, error: str, token: int) -> None:
            super().__init__()
            self.error = error
            self.token = token

    def __init__(self) -> None:
        super().__init__()
        self.busy = False
        self._token = 0
        self.last_request: PoemRequest | None = None

    @property
    def service(self) -> ShirenService:
        return self.app.service  # type: ignore[attr-defined]

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield NavBar("compose")
        with Horizontal(id="compose-main"):
            with Vertical(id="compose-form"):
                with Horizontal(classes="field"):
                    yield Label("form 体", classes="field-label")
                    yield Select([(f, f) for f in FORMS], value="七绝", allow_blank=False, id="form",
                                 compact=True)
                for name, label, placeholder in FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(label, classes="field-label")
                        yield Input(placeholder=placeholder, id=name, compact=True)
                with Horizontal(classes="field", id="cipai-row"):
                    yield Label("词牌", classes="field-label")
                    yield Input(placeholder="^P to pick", id="cipai", compact=True, disabled=True)
                with Horizontal(classes="field"):
                    yield Label("n", classes="field-label")
                    yield Input("1", id="n", type="integer", compact=True, classes="short")
                    yield Label(" temp", classes="field-label-short")
                    yield Input(f"{DEFAULT_TEMPERATURE:g}", id="temperature", type="number", compact=True, classes="short")
                with Horizontal(classes="buttons"):
                    yield Button("Write ^R", id="write", variant="primary", compact=True)
                    yield Button("Cancel Esc", id="cancel", compact=True, disabled=True)
                yield ProgressBar(total=None, show_eta=False, show_percentage=False, id="busy-bar")
                yield Static("", id="status", classes="status")
                yield Static("", id="error", classes="error")
            with Vertical(id="poem-pane"):
                yield PoemView(id="poem")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#busy-bar").display = False
        self.watch(self.app, "poet_state", self._poet_state_changed)
        self.query_one("#title", Input).focus()

    # -- model loading state ---------------------------------------------------------------------
    def _poet_state_changed(self, state: str) -> None:
        status = self.query_one("#status", Static)
        view = self.query_one(PoemView)
        if state == "loading":
            self.query_one("#busy-bar").display = True
            status.update("loading the model…")
            view.set_placeholder("Loading the model… you can fill in the form meanwhile.")
        elif state == "ready":
            if not self.busy:
                self.query_one("#busy-bar").display = False
            status.update(f"model {self.service.model_version}")
            view.set_placeholder("Fill in the form and press Enter or Ctrl+R to write a poem.")
        elif state == "failed":
            self.query_one("#busy-bar").display = False
            status.update("")
            msg = self.service.load_error or "the model could not be loaded"
            self.show_error(f"Cannot write poems: {msg}. Check (F3) and History (F4) still work.")
            view.set_placeholder("No model loaded — see the message on the left.")

    # -- the form --------------------------------------------------------------------------------
    @on(Select.Changed, "#form")
    def _form_changed(self, event: Select.Changed) -> None:
        is_ci = event.value == "词"
        cipai = self.query_one("#cipai", Input)
        cipai.disabled = not is_ci
        self.refresh_bindings()
        for name in ("acrostic", "first_line"):
            self.query_one(f"#{name}", Input).disabled = is_ci
        self.clear_error()

    def show_error(self, message: str) -> None:
        self.query_one("#error", Static).update(message)

    def clear_error(self) -> None:
        self.query_one("#error", Static).update("")

    @property
    def error_text(self) -> str:
        return str(self.query_one("#error", Static).content)

    def form_values(self) -> dict[str, str]:
        form = self.query_one("#form", Select).value
        values = {"form": str(form)}
        for name in ("title", "keywords", "acrostic", "first_line", "cipai", "n", "temperature"):
            inp = self.query_one(f"#{name}", Input)
            values[name] = "" if inp.disabled else inp.value
        return values

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_write()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "write":
            self.action_write()
        elif event.button.id == "cancel":
            self.action_cancel()

    # -- writing ---------------------------------------------------------------------------------
    def action_write(self) -> None:
        if self.busy:
            self.show_error("Already writing — press Esc to cancel first.")
            return
        try:
            req = self.service.build_request(**self.form_values())
        except ShirenError as e:
            self.show_error(str(e))
            return
        self.start(req)

    def start(self, req: PoemRequest) -> None:
        state = getattr(self.app, "poet_state", "ready")
        if state == "failed":
            self.show_error(f"Cannot write poems: {self.service.load_error}")
            return
        self.clear_error()
        self.last_request = req
        self._token += 1
        self._set_busy(True, f"writing {req.n} poem{'s' if req.n > 1 else ''}… (Esc cancels)")
        self._write(req, self._token)

    def _set_busy(self, busy: bool, message: str = "") -> None:
        self.busy = busy
        self.query_one("#busy-bar").display = busy or getattr(self.app, "poet_state", "") == "loading"
        self.query_one("#write", Button).disabled = busy
        self.query_one("#cancel", Button).disabled = not busy
        self.query_one("#status", Static).update(message)
        self.refresh_bindings()

    @work(thread=True, exclusive=True, group="write", exit_on_error=False)
    def _write(self, req: PoemRequest, token: int) -> None:
        worker = get_current_worker()
        try:
            poems = self.service.write(req, is_cancelled=lambda: worker.is_cancelled)
        except ShirenError as e:
            self.post_message(self.WriteFailed(str(e), token))
            return
        except Exception as e:  # noqa: BLE001 — never crash the app on a generation bug
            self.post_message(self.WriteFailed(f"unexpected error: {e}", token))
            return
        if not worker.is_cancelled:
            self.post_message(self.Written(poems, token))

    def on_compose_screen_written(self, event: Written) -> None:
        if event.token != self._token:
            return  # cancelled meanwhile
        n = len(event.poems)
        self._set_busy(False, f"{n} poem{'s' if n > 1 else ''} written" + (" · ← → to browse" if n > 1 else ""))
        view = self.query_one(PoemView)
        view.show_poems(event.poems)
        view.focus()

    def on_compose_screen_write_failed(self, event: WriteFailed) -> None:
        if event.token != self._token:
            return
        self._set_busy(False)
        self.show_error(event.error)

    def action_cancel(self) -> None:
        if not self.busy:
            return
        self.workers.cancel_group(self, "write")
        self._token += 1
        self._set_busy(False, "cancelled")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.busy
        if action == "pick_cipai":
            return self.query_one("#form", Select).value == "词"
        return True

    # -- 词牌 picker -----------------------------------------------------------------------------
    def action_pick_cipai(self) -> None:
        if self.query_one("#form", Select).value != "词":
            return
        cipai = self.query_one("#cipai", Input)

        def chosen(name: str | None) -> None:
            if name:
                cipai.value = name
                self.clear_error()
            cipai.focus()

        self.app.push_screen(CipaiPicker(cipai.value), chosen)

    # -- the poem pane ---------------------------------------------------------------------------
    def on_poem_view_rate_requested(self, event: PoemView.RateRequested) -> None:
        try:
            self.service.rate(event.poem.id, event.stars)
        except ShirenError as e:
            self.show_error(str(e))
            return
        self.query_one(PoemView).set_rating(event.poem.id, event.stars)
        self.query_one("#status", Static).update(f"rated #{event.poem.id}: {event.stars}★ (saved)")

    def on_poem_view_another_requested(self, event: PoemView.AnotherRequested) -> None:
        if self.last_request is None:
            self.action_write()
            return
        if self.busy:
            return
        from dataclasses import replace

        self.start(replace(self.last_request, seed=None))

    def on_poem_view_explain_requested(self, event: PoemView.ExplainRequested) -> None:
        p = event.poem.poem
        try:
            an = self.service.explain(p.text, p.form, p.cipai)
        except ShirenError as e:
            self.show_error(str(e))
            return
        view = self.query_one(PoemView)
        self.app.push_screen(ExplainScreen(an, poem_heading(p.title, p.form, p.cipai),
                                           to_traditional if view.traditional else None,
                                           doubts=self.service.doubts(p)))

    def on_poem_view_revise_requested(self, event: PoemView.ReviseRequested) -> None:
        if self.busy:
            self.show_error("Already writing — press Esc to cancel first.")
            return
        from core.revise import clauses
        from tui.screens.line_picker import LinePicker

        poem = event.poem

        def chosen(line: int | None) -> None:
            if line is not None:
                self.clear_error()
                self._token += 1
                self._set_busy(True, f"rewriting line {line} of #{poem.id}… (Esc cancels)")
                self._revise(poem, line, self._token)

        self.app.push_screen(LinePicker(clauses(poem.poem.text)), chosen)

    @work(thread=True, exclusive=True, group="write", exit_on_error=False)
    def _revise(self, poem: StoredPoem, line: int, token: int) -> None:
        worker = get_current_worker()
        try:
            new = self.service.revise(poem, line)
        except ShirenError as e:
            self.post_message(self.WriteFailed(str(e), token))
            return
        except Exception as e:  # noqa: BLE001 — never crash the app on a generation bug
            self.post_message(self.WriteFailed(f"unexpected error: {e}", token))
            return
        if not worker.is_cancelled:
            self.post_message(self.Written([new], token))
