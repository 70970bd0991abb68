"""Pick a 词牌: type to search the 1,300+ names of 全宋词 (most common first)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

MAX_SHOWN = 200


def search_cipai(query: str, names: list[str]) -> list[str]:
    q = (query or "").strip()
    if not q:
        return names[:MAX_SHOWN]
    try:
        from core.gelv.cipai import normalize_name

        q = normalize_name(q) or q
    except Exception:  # noqa: BLE001
        pass
    starts = [n for n in names if n.startswith(q)]
    inside = [n for n in names if q in n and not n.startswith(q)]
    return (starts + inside)[:MAX_SHOWN]


class CipaiPicker(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("down", "to_list", "list", show=False)]

    def __init__(self, initial: str = "") -> None:
        super().__init__()
        self.initial = initial
        from core.gelv import top_cipai

        self.names = top_cipai(10_000)

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box", classes="dialog"):
            yield Static("词牌 — type to search, Enter to choose, Esc to cancel", classes="dialog-title")
            yield Input(self.initial, placeholder="e.g. 浣溪沙, 水调", id="picker-search", compact=True)
            yield OptionList(id="picker-list")
            yield Static("", id="picker-count", classes="hint")

    def on_mount(self) -> None:
        self._fill(self.initial)
        self.query_one("#picker-search", Input).focus()

    def _fill(self, query: str) -> None:
        found = search_cipai(query, self.names)
        ol = self.query_one("#picker-list", OptionList)
        ol.clear_options()
        ol.add_options([Option(n, id=n) for n in found])
        if found:
            ol.highlighted = 0
        self.query_one("#picker-count", Static).update(
            f"{len(found)} shown" if found else "no 词牌 matches; try fewer characters")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        ol = self.query_one("#picker-list", OptionList)
        if ol.option_count and ol.highlighted is not None:
            self.dismiss(str(ol.get_option_at_index(ol.highlighted).id))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(str(event.option.id))

    def action_to_list(self) -> None:
        self.query_one("#picker-list", OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
