"""The help screen: every key, per screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# Shiren 诗人 — keys

**Anywhere**: `F1` this help · `F2` compose · `F3` check · `F4` history · `F5` model · `Ctrl+Q` quit ·
`Tab` / `Shift+Tab` move between fields.

## Compose (F2)
Fill in the form (form, title, keywords, acrostic 藏头, first line 首句, 词牌, n, temperature).
`Enter` in a field or `Ctrl+R` writes; `Esc` cancels a running generation; `Ctrl+P` opens the 词牌 picker
(type to search, `Enter` to choose).
In the poem pane: `1`–`5` rate (stored at once) · `a` another · `e` explain (平仄, 韵脚, violations) ·
`v` vertical (right to left) · `t` 繁/简 · `←` `→` other candidates.

## Check (F3)
Type or paste a poem, optionally choose a form or a 词牌, `Ctrl+R` checks.

## History (F4)
`/` search · `1`–`5` re-rate · `e` explain · `d` delete (with its rating) · `x` export (Markdown or text).

## Model (F5)
`r` run a feedback fine-tuning round (progress bar and log) · `p` promote the selected adapter ·
`b` roll back to the previous adapter · `l` reload the model.

Press `Esc` to close.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Markdown(HELP)

    def action_dismiss(self, result=None) -> None:  # type: ignore[override]
        self.dismiss(None)
