"""Export the history: choose Markdown or plain text and a file."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, RadioButton, RadioSet, Static


class ExportScreen(ModalScreen[tuple[str, Path] | None]):
    """Returns (format, path) or None."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, directory: Path | None = None) -> None:
        super().__init__()
        self.directory = directory or Path.cwd()

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box", classes="dialog"):
            yield Static("Export my poems", classes="dialog-title")
            with RadioSet(id="export-format"):
                yield RadioButton("Markdown (.md)", value=True, id="fmt-markdown")
                yield RadioButton("Plain text (.txt)", id="fmt-text")
            yield Input(str(self.directory / "shiren-poems.md"), id="export-path", compact=True)
            yield Static("", id="export-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Export", id="export-go", variant="primary", compact=True)
                yield Button("Cancel", id="export-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @property
    def fmt(self) -> str:
        return "text" if self.query_one("#fmt-text", RadioButton).value else "markdown"

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        inp = self.query_one("#export-path", Input)
        p = Path(inp.value or "shiren-poems")
        inp.value = str(p.with_suffix(".txt" if self.fmt == "text" else ".md"))

    def _go(self) -> None:
        value = self.query_one("#export-path", Input).value.strip()
        if not value:
            self.query_one("#export-error", Static).update("give a file name")
            return
        path = Path(value).expanduser()
        if path.is_dir():
            self.query_one("#export-error", Static).update(f"{path} is a folder; give a file name")
            return
        self.dismiss((self.fmt, path))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._go()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export-go":
            self._go()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
