"""The model screen: base and adapter versions with their metrics; feedback fine-tuning; promote / roll back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Log, ProgressBar, Static

from core.types import ShirenError
from tui.widgets.nav_bar import NavBar

if TYPE_CHECKING:
    from tui.service import ShirenService


def metrics_text(m: dict | None, limit: int = 40) -> str:
    if not m:
        return "—"
    parts = []
    for k, v in m.items():
        if isinstance(v, float):
            v = f"{v:.3g}"
        elif isinstance(v, dict | list):
            v = json.dumps(v, ensure_ascii=False)
        parts.append(f"{k}={v}")
    s = " ".join(parts)
    return s if len(s) <= limit else s[: limit - 1] + "…"


class ModelScreen(Screen):
    BINDINGS = [
        Binding("r", "retrain", "train round"),
        Binding("p", "promote", "promote"),
        Binding("b", "rollback", "roll back"),
        Binding("l", "reload", "reload model"),
    ]

    class TrainProgress(Message):
        def __init__(self, fraction: float, line: str) -> None:
            super().__init__()
            self.fraction = fraction
            self.line = line

    class TrainDone(Message):
        def __init__(self, result: dict | None, error: str | None = None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    class Reloaded(Message):
        def __init__(self, error: str | None = None) -> None:
            super().__init__()
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.training = False

    @property
    def service(self) -> ShirenService:
        return self.app.service  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield NavBar("model")
        with Vertical(id="model-main"):
            yield Static("", id="model-info")
            yield DataTable(id="adapter-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="model-train-status", classes="status")
            yield ProgressBar(total=1.0, show_eta=False, id="train-bar")
            yield Log(id="train-log", max_lines=1000)
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one("#adapter-table", DataTable)
        t.add_column("adapter", key="name")
        t.add_column("status", key="status")
        t.add_column("parent", key="parent")
        t.add_column("metrics", key="metrics")
        t.add_column("created", key="created")
        self.watch(self.app, "poet_state", lambda _s: self.reload())
        log = self.query_one(Log)
        if not self.service.can_retrain:
            self.query_one(ProgressBar).display = False
            self.query_one("#model-train-status", Static).update(
                "Feedback training is not available in this installation (no training function is wired in).")
        else:
            self.query_one("#model-train-status", Static).update("r runs one feedback fine-tuning round on your ratings.")
        log.write_line("training log")
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        try:
            info = self.service.model_info()
            adapters = self.service.adapters()
            runs = self.service.runs(5)
        except ShirenError as e:
            self.query_one("#model-info", Static).update(Text(str(e), style="red"))
            return
        t = Text()
        t.append("base model ", style="dim")
        t.append(str(info["base"]), style="bold")
        if info.get("load_error"):
            t.append(f"  ({info['load_error']})", style="red")
        t.append("   active adapter ", style="dim")
        t.append(str(info["active"] or "none (base only)"), style="bold")
        t.append(f"\nratings {info['ratings']} · poems {info['poems']} · users {info['users']}", style="dim")
        if runs:
            r = runs[0]
            t.append(f"\nlast run #{r.id} {r.kind}: {r.outcome}"
                     + (f" → {r.adapter}" if r.adapter else "")
                     + (f" ({r.error})" if r.error else "")
                     + f" · {metrics_text(r.metrics)}", style="dim")
        self.query_one("#model-info", Static).update(t)
        table = self.query_one("#adapter-table", DataTable)
        keep = self.selected_adapter
        table.clear()
        for a in adapters:
            style = "bold green" if a.status == "active" else ("dim" if a.status == "retired" else "")
            table.add_row(Text(a.name, style=style), a.status, a.parent or "—", metrics_text(a.metrics),
                          f"{a.created:%Y-%m-%d}", key=a.name)
        if not adapters:
            table.add_row(Text("(no adapters yet)", style="dim"), "", "", "", "", key="")
        if keep:
            try:
                table.move_cursor(row=table.get_row_index(keep))
            except Exception:  # noqa: BLE001
                pass

    @property
    def selected_adapter(self) -> str | None:
        t = self.query_one("#adapter-table", DataTable)
        if not t.row_count:
            return None
        key = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        return key or None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "retrain":
            return None if (not self.service.can_retrain or self.training) else True
        return True

    # -- feedback training ---------------------------------------------------------------------
    def action_retrain(self) -> None:
        if not self.service.can_retrain:
            self.query_one(ProgressBar).display = False
            self.notify("feedback training is not available", severity="warning")
            return
        if self.training:
            return
        self.training = True
        self.refresh_bindings()
        self.query_one(ProgressBar).update(total=1.0, progress=0.0)
        self.query_one("#model-train-status", Static).update("feedback round running…")
        self.query_one(Log).write_line("— feedback round started —")
        self._train()

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _train(self) -> None:
        def progress(fraction: float, line: str = "") -> None:
            self.post_message(self.TrainProgress(float(fraction), str(line or "")))

        try:
            result = self.service.run_retrain(progress)
        except ShirenError as e:
            self.post_message(self.TrainDone(None, str(e)))
            return
        except Exception as e:  # noqa: BLE001
            self.post_message(self.TrainDone(None, f"unexpected error: {e}"))
            return
        self.post_message(self.TrainDone(result))

    def on_model_screen_train_progress(self, event: TrainProgress) -> None:
        self.query_one(ProgressBar).update(progress=max(0.0, min(1.0, event.fraction)))
        if event.line:
            self.query_one(Log).write_line(event.line)

    def on_model_screen_train_done(self, event: TrainDone) -> None:
        self.training = False
        self.refresh_bindings()
        status = self.query_one("#model-train-status", Static)
        log = self.query_one(Log)
        if event.error:
            status.update(Text(f"feedback round failed: {event.error}", style="red"))
            log.write_line(f"failed: {event.error}")
        else:
            self.query_one(ProgressBar).update(progress=1.0)
            status.update(Text(f"feedback round done: {metrics_text(event.result, 70)}", style="green"))
            log.write_line("done: " + json.dumps(event.result, ensure_ascii=False, default=str))
        self.reload()

    # -- versions ------------------------------------------------------------------------------
    def action_promote(self) -> None:
        name = self.selected_adapter
        if not name:
            self.notify("no adapter selected", severity="warning")
            return
        try:
            self.service.promote(name)
        except ShirenError as e:
            self.notify(str(e), severity="error")
            return
        self.query_one(Log).write_line(f"promoted {name}")
        self.notify(f"{name} is now active; l reloads the model", timeout=3)
        self.reload()

    def action_rollback(self) -> None:
        try:
            back = self.service.rollback()
        except ShirenError as e:
            self.notify(str(e), severity="error")
            return
        if back is None:
            self.notify("nothing to roll back to", severity="warning")
            return
        self.query_one(Log).write_line(f"rolled back to {back.name}")
        self.notify(f"rolled back to {back.name}; l reloads the model", timeout=3)
        self.reload()

    def action_reload(self) -> None:
        self.app.reload_poet()  # type: ignore[attr-defined]
