"""The explain view of one poem: the 格律 analysis from the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tui.widgets.analysis_view import AnalysisView

if TYPE_CHECKING:
    from core.gelv import Analysis


class ExplainScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,e,q", "close", "close")]

    def __init__(self, analysis: Analysis, heading: str = "", convert=None, doubts: str = "") -> None:
        super().__init__()
        self.analysis = analysis
        self.heading = heading
        self.convert = convert
        self.doubts = doubts  # the critic's doubted characters, 「X」(第n句)、…

    def compose(self) -> ComposeResult:
        yield Static(f"Explain · {self.heading}" if self.heading else "Explain", id="explain-title",
                     classes="dialog-title")
        yield AnalysisView(id="explain-analysis")
        if self.doubts:
            yield Static(f"评点 · the critic doubts {self.doubts}", id="explain-doubts", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        view = self.query_one(AnalysisView)
        view.show(self.analysis, self.convert)
        view.focus()

    def action_close(self) -> None:
        self.dismiss(None)
