"""Export: the history as Markdown or plain text, or the selected poem as a PNG card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, RadioButton, RadioSet, Static

SUFFIX = {"markdown": ".md", "text": ".txt", "png": ".png"}


@dataclass(frozen=True)
class ExportChoice:
    fmt: str  # markdown | text | png
    path: Path
    layout: str = "vertical"  # png only
    tones: bool = False
    script: str = "simplified"


class ExportScreen(ModalScreen[ExportChoice | None]):
    """Returns an ExportChoice or None. `poem_id`: the selected poem (offers a PNG card of it)."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, directory: Path | None = None, poem_id: int | None = None) -> None:
        super().__init__()
        self.directory = directory or Path.cwd()
        self.poem_id = poem_id

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box", classes="dialog"):
            yield Static("Export", classes="dialog-title")
            with RadioSet(id="export-format"):
                yield RadioButton("My poems as Markdown (.md)", value=True, id="fmt-markdown")
                yield RadioButton("My poems as plain text (.txt)", id="fmt-text")
                yield RadioButton(f"Poem #{self.poem_id} as a picture card (.png)" if self.poem_id is not None
                                  else "Picture card (.png): select a poem first", id="fmt-png",
                                  disabled=self.poem_id is None)
            with Horizontal(id="export-card-options"):
                yield Checkbox("horizontal", id="card-horizontal", compact=True)
                yield Checkbox("平仄 colours", id="card-tones", compact=True)
                yield Checkbox("繁體", id="card-traditional", compact=True)
            yield Input(str(self.directory / "shiren-poems.md"), id="export-path", compact=True)
            yield Static("", id="export-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Export", id="export-go", variant="primary", compact=True)
                yield Button("Cancel", id="export-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#export-card-options").display = False
        self.query_one("#export-path", Input).focus()

    @property
    def fmt(self) -> str:
        if self.query_one("#fmt-png", RadioButton).value:
            return "png"
        return "text" if self.query_one("#fmt-text", RadioButton).value else "markdown"

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        inp = self.query_one("#export-path", Input)
        p = Path(inp.value or "shiren-poems")
        if self.fmt == "png" and p.stem == "shiren-poems":
            p = p.with_name(f"shiren-poem-{self.poem_id}")
        elif self.fmt != "png" and p.stem.startswith("shiren-poem-"):
            p = p.with_name("shiren-poems")
        inp.value = str(p.with_suffix(SUFFIX[self.fmt]))
        self.query_one("#export-card-options").display = self.fmt == "png"

    def _go(self) -> None:
        value = self.query_one("#export-path", Input).value.strip()
        if not value:
            self.query_one("#export-error", Static).update("give a file name")
            return
        path = Path(value).expanduser()
        if path.is_dir():
            self.query_one("#export-error", Static).update(f"{path} is a folder; give a file name")
            return
        if self.fmt != "png":
            self.dismiss(ExportChoice(self.fmt, path))
            return
        self.dismiss(ExportChoice(
            "png", path,
            layout="horizontal" if self.query_one("#card-horizontal", Checkbox).value else "vertical",
            tones=self.query_one("#card-tones", Checkbox).value,
            script="traditional" if self.query_one("#card-traditional", Checkbox).value else "simplified"))

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
