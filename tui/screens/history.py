"""History: the user's poems with their ratings; search, re-rate, explain, delete, export (the
history as Markdown or text, the selected poem as a PNG card)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from core.types import ShirenError
from tui.screens.confirm import ConfirmScreen
from tui.screens.explain import ExplainScreen
from tui.screens.export import ExportChoice, ExportScreen
from tui.service import poem_heading, stars_text
from tui.widgets.nav_bar import NavBar
from tui.widgets.poem_view import horizontal_rows

if TYPE_CHECKING:
    from db.store import PoemRecord
    from tui.service import ShirenService

PAGE = 200


class HistoryScreen(Screen):
    BINDINGS = [
        Binding("slash", "search", "search"),
        Binding("1", "rate(1)", "re-rate", key_display="1-5"),
        Binding("2", "rate(2)", "rate 2", show=False),
        Binding("3", "rate(3)", "rate 3", show=False),
        Binding("4", "rate(4)", "rate 4", show=False),
        Binding("5", "rate(5)", "rate 5", show=False),
        Binding("e", "explain", "explain"),
        Binding("d,delete", "delete", "delete"),
        Binding("x", "export", "export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[int, PoemRecord] = {}

    @property
    def service(self) -> ShirenService:
        return self.app.service  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield NavBar("history")
        with Horizontal(id="history-search-row", classes="field"):
            yield Static("search", classes="field-label")
            yield Input(placeholder="text or title; Enter to search, Esc back to list", id="history-search",
                        compact=True)
            yield Static("", id="history-count", classes="hint")
        with Horizontal(id="history-main"):
            yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="history-preview-pane"):
                yield Static("", id="history-preview")
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        t.add_column("#", key="id")
        t.add_column("date", key="date")
        t.add_column("form", key="form")
        t.add_column("title", key="title")
        t.add_column("rating", key="stars")
        self.reload()
        t.focus()

    def on_screen_resume(self) -> None:
        self.reload()

    @property
    def search(self) -> str:
        return self.query_one("#history-search", Input).value.strip()

    def reload(self, keep: int | None = None) -> None:
        t = self.query_one(DataTable)
        if keep is None and t.row_count:
            try:
                keep = int(t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001
                keep = None
        try:
            recs = self.service.history(self.search, limit=PAGE)
            total = self.service.count_history(self.search)
        except ShirenError as e:
            self.notify(str(e), severity="error")
            return
        t.clear()
        self.records = {r.id: r for r in recs}
        for r in recs:
            kind = r.cipai if r.form == "词" and r.cipai else r.form
            t.add_row(str(r.id), f"{r.created:%m-%d}", kind, (r.title or "无题")[:10],
                      Text(stars_text(r.rating), style="yellow" if r.rating else "dim"), key=str(r.id))
        shown = f"{len(recs)} of {total}" if total > len(recs) else f"{total}"
        self.query_one("#history-count", Static).update(f"{shown} poem{'s' if total != 1 else ''}")
        if keep is not None and keep in self.records:
            t.move_cursor(row=t.get_row_index(str(keep)))
        self._preview()

    @property
    def selected(self) -> PoemRecord | None:
        t = self.query_one(DataTable)
        if not t.row_count:
            return None
        key = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        return self.records.get(int(key)) if key is not None else None

    def _preview(self) -> None:
        pre = self.query_one("#history-preview", Static)
        r = self.selected
        if r is None:
            msg = "No poems match." if self.search else "No poems yet: write one on the compose screen (F2)."
            pre.update(Text(msg, style="italic dim"))
            return
        t = Text()
        t.append(poem_heading(r.title, r.form, r.cipai) + "\n\n", style="bold underline")
        width = max(10, pre.content_size.width or 30)
        for ln in horizontal_rows(r.text, width):
            t.append(ln + "\n", style="bold")
        t.append("\n" + stars_text(r.rating), style="yellow" if r.rating else "dim")
        t.append(f"  #{r.id}\n", style="dim")
        t.append(f"{r.created:%Y-%m-%d %H:%M} · {r.model_version}", style="dim")
        pre.update(t)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._preview()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.reload()
        self.query_one(DataTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.reload()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.focused is self.query_one("#history-search", Input):
            event.stop()
            self.query_one(DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("rate", "explain", "delete") and self.selected is None:
            return None
        return True

    # -- actions ---------------------------------------------------------------------------------
    def action_search(self) -> None:
        self.query_one("#history-search", Input).focus()

    def action_rate(self, stars: int) -> None:
        r = self.selected
        if r is None:
            return
        try:
            self.service.rate(r.id, stars)
        except ShirenError as e:
            self.notify(str(e), severity="error")
            return
        self.reload(keep=r.id)
        self.notify(f"#{r.id} rated {stars}★", timeout=2)

    def action_explain(self) -> None:
        r = self.selected
        if r is None:
            return
        try:
            an = self.service.explain(r.text, r.form, r.cipai)
        except ShirenError as e:
            self.notify(str(e), severity="error")
            return
        self.app.push_screen(ExplainScreen(an, poem_heading(r.title, r.form, r.cipai)))

    def action_delete(self) -> None:
        r = self.selected
        if r is None:
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.service.delete(r.id)
            except ShirenError as e:
                self.notify(str(e), severity="error")
                return
            self.reload()
            self.notify(f"deleted #{r.id} and its rating", timeout=2)

        first = r.text.split("\n")[0]
        self.app.push_screen(ConfirmScreen(f"Delete poem #{r.id} 「{first}」 and its rating?"), answered)

    def action_export(self) -> None:
        selected = self.selected

        def chosen(choice: ExportChoice | None) -> None:
            if not choice:
                return
            if choice.fmt == "png" and selected is not None:
                self.notify(f"drawing the card of #{selected.id}…", timeout=2)
                self._export_card(selected.id, choice)
                return
            try:
                n = self.service.export_to(choice.path, choice.fmt, self.search)
            except (ShirenError, OSError) as e:
                self.notify(f"export failed: {e}", severity="error")
                return
            self.notify(f"exported {n} poem{'s' if n != 1 else ''} to {choice.path}", timeout=4)

        self.app.push_screen(ExportScreen(poem_id=selected.id if selected is not None else None), chosen)

    @work(thread=True, exclusive=True, group="export-card", exit_on_error=False)
    def _export_card(self, poem_id: int, choice: ExportChoice) -> None:
        """Draw and write the card in a worker (the font loads on first use)."""
        try:
            done = self.service.export_card(poem_id, choice.path, layout=choice.layout, tones=choice.tones,
                                            script=choice.script)
        except (ShirenError, OSError) as e:
            self.app.call_from_thread(self.notify, f"export failed: {e}", severity="error")
            return
        if done.fallback:
            self.app.call_from_thread(self.notify, f"{done.fallback}; wrote the card as text to {done.path}",
                                      severity="warning", timeout=8)
        else:
            self.app.call_from_thread(self.notify, f"wrote the card of #{poem_id} to {done.path}", timeout=4)
