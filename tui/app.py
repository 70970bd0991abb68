"""The Shiren terminal app: wires the screens (one mode each) to a `ShirenService`."""

from __future__ import annotations

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive

from core.types import ShirenError
from tui.screens.check import CheckScreen
from tui.screens.compose import ComposeScreen
from tui.screens.help import HelpScreen
from tui.screens.history import HistoryScreen
from tui.screens.model import ModelScreen
from tui.service import ShirenService


class ShirenApp(App):
    """`ShirenApp(service).run()`. Tests pass a service with a tiny poet and a temporary Store."""

    TITLE = "Shiren 诗人"
    CSS_PATH = "shiren.tcss"
    ENABLE_COMMAND_PALETTE = False
    MODES = {"compose": ComposeScreen, "check": CheckScreen, "history": HistoryScreen, "model": ModelScreen}
    DEFAULT_MODE = "compose"
    # Screens get -short/-tall and -narrow/-wide classes; the styles tighten at 80×24 and grow beyond.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("f1", "help", "help", show=False),
        Binding("f2", "switch_mode('compose')", "compose", show=False),
        Binding("f3", "switch_mode('check')", "check", show=False),
        Binding("f4", "switch_mode('history')", "history", show=False),
        Binding("f5", "switch_mode('model')", "model", show=False),
        Binding("ctrl+q", "quit", "quit", priority=True),
    ]

    # "loading" → "ready" | "failed"; screens watch it.
    poet_state: reactive[str] = reactive("loading")

    class PoetLoaded(Message):
        def __init__(self, error: str | None = None) -> None:
            super().__init__()
            self.error = error

    def __init__(self, service: ShirenService, *, load_poet: bool = True) -> None:
        super().__init__()
        self.service = service
        self._load_on_start = load_poet

    def on_mount(self) -> None:
        if self.service.poet_ready:
            self.poet_state = "ready"
        elif self._load_on_start:
            self._load_poet(reload=False)
        else:
            self.poet_state = "failed"

    def reload_poet(self) -> None:
        self.poet_state = "loading"
        self.notify("reloading the model…", timeout=2)
        self._load_poet(reload=True)

    @work(thread=True, exclusive=True, group="load-poet", exit_on_error=False)
    def _load_poet(self, reload: bool) -> None:
        try:
            if reload:
                self.service.reload_poet()
            else:
                self.service.load_poet()
        except ShirenError as e:
            self.post_message(self.PoetLoaded(str(e)))
            return
        except Exception as e:  # noqa: BLE001
            self.post_message(self.PoetLoaded(f"cannot load the model: {e}"))
            return
        self.post_message(self.PoetLoaded())

    def on_shiren_app_poet_loaded(self, event: PoetLoaded) -> None:
        if event.error:
            self.service.load_error = event.error
            self.poet_state = "failed"
            self.notify(f"model not loaded: {event.error}", severity="error", timeout=8)
        else:
            self.poet_state = "ready"

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
