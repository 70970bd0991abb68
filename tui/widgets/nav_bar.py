"""The top bar: the app name and the screens with their keys, the current one highlighted."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SCREENS = (("compose", "F2", "Compose 作诗"), ("check", "F3", "Check 格律"), ("history", "F4", "History"),
           ("model", "F5", "Model"))


class NavBar(Static):
    DEFAULT_CLASSES = "nav-bar"

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def on_mount(self) -> None:
        self.update(self._text(self.size.width or 80))

    def on_resize(self) -> None:
        self.update(self._text(self.size.width))

    def _text(self, width: int) -> Text:
        t = Text(no_wrap=True, overflow="crop")
        t.append(" 诗人 Shiren ", style="bold reverse")
        for mode, key, label in SCREENS:
            if width < 90:
                label = label.split(" ")[0]
            t.append("  ")
            if mode == self.current:
                t.append(f" {key} {label} ", style="bold reverse")
            else:
                t.append(f"{key} ", style="dim")
                t.append(label)
        t.append("   F1 help", style="dim")
        return t
