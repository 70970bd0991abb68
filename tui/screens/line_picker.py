"""Pick the line (句) of a poem to rewrite: Enter chooses, Esc cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class LinePicker(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box", classes="dialog"):
            yield Static("Rewrite which line? The rest stays, and every 格律 rule holds. Esc cancels.",
                         classes="dialog-title")
            yield OptionList(*[Option(f"第{i}句  {ln}", id=str(i)) for i, ln in enumerate(self.lines, 1)],
                             id="line-list")

    def on_mount(self) -> None:
        ol = self.query_one("#line-list", OptionList)
        ol.highlighted = 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)
