"""The poem pane: the current poem large and centred, horizontal or classical vertical (right to left)."""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from core.script import to_traditional
from tui.service import StoredPoem, poem_heading, stars_text

_CLAUSE = re.compile(r"[^，。？！；、：]+")


_CLAUSE_P = re.compile(r"[^，。？！；、：]+[，。？！；、：]?")


def horizontal_rows(text: str, width: int) -> list[str]:
    """The poem's rows, as large as the width allows: whole lines spaced out, else one clause per row."""
    lines = [ln for ln in text.split("\n") if ln]
    clauses = [c for ln in lines for c in _CLAUSE_P.findall(ln)]
    for rows in (lines, clauses):
        spaced = [" ".join(r) for r in rows]
        if max((cell_len(r) for r in spaced), default=0) <= width:
            return spaced
    if max((cell_len(r) for r in lines), default=0) <= width:
        return lines
    return clauses


def vertical_lines(title: str, text: str, width: int) -> list[str]:
    """Columns right to left, one clause per column, read top to bottom; wraps into blocks when too wide."""
    cols = _CLAUSE.findall(text.replace("\n", "。"))
    if title:
        cols = [title, ""] + cols
    if not cols:
        return []
    per_block = max(1, (max(width, 4) + 2) // 4)  # a column is 2 cells plus a 2-cell gap
    out: list[str] = []
    for b in range(0, len(cols), per_block):
        block = cols[b:b + per_block]
        height = max(len(c) for c in block)
        if out:
            out.append("")
        for row in range(height):
            cells = []
            for col in reversed(block):  # right to left: the first column is on the right
                cells.append(col[row] if row < len(col) else "  ")
            out.append("  ".join(c if cell_len(c) == 2 else c.ljust(2) for c in cells).rstrip())
    return out


class PoemView(Widget, can_focus=True):
    """Shows one of the candidates; keys rate it, ask for another, explain it, change the layout."""

    BINDINGS = [
        Binding("1", "rate(1)", "rate", key_display="1-5"),
        Binding("2", "rate(2)", "rate 2", show=False),
        Binding("3", "rate(3)", "rate 3", show=False),
        Binding("4", "rate(4)", "rate 4", show=False),
        Binding("5", "rate(5)", "rate 5", show=False),
        Binding("a", "another", "another"),
        Binding("e", "explain", "explain"),
        Binding("w", "revise", "rewrite"),
        Binding("v", "toggle_vertical", "vertical"),
        Binding("t", "toggle_traditional", "繁/简"),
        Binding("right,n", "next", "next", show=False),
        Binding("left,p", "previous", "previous", show=False),
    ]

    class RateRequested(Message):
        def __init__(self, poem: StoredPoem, stars: int) -> None:
            super().__init__()
            self.poem = poem
            self.stars = stars

    class AnotherRequested(Message):
        pass

    class ExplainRequested(Message):
        def __init__(self, poem: StoredPoem) -> None:
            super().__init__()
            self.poem = poem

    class ReviseRequested(Message):
        def __init__(self, poem: StoredPoem) -> None:
            super().__init__()
            self.poem = poem

    vertical: reactive[bool] = reactive(False)
    traditional: reactive[bool] = reactive(False)
    index: reactive[int] = reactive(0)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.poems: list[StoredPoem] = []
        self.ratings: dict[int, int] = {}
        self.placeholder = "Fill in the form and press Enter or Ctrl+R to write a poem."

    # -- state -----------------------------------------------------------------------------------
    @property
    def current(self) -> StoredPoem | None:
        return self.poems[self.index] if 0 <= self.index < len(self.poems) else None

    def show_poems(self, poems: list[StoredPoem]) -> None:
        self.poems = list(poems)
        self.index = 0
        self.refresh()

    def set_rating(self, poem_id: int, stars: int) -> None:
        self.ratings[poem_id] = stars
        self.refresh()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.refresh()

    def _fmt(self, s: str) -> str:
        return to_traditional(s) if self.traditional else s

    # -- rendering -------------------------------------------------------------------------------
    def render(self) -> Text:
        p = self.current
        width, height = self.content_size.width, self.content_size.height
        if p is None:
            return Text("\n" * max(0, height // 2 - 1) + self.placeholder, style="italic", justify="center")
        poem = p.poem
        heading = self._fmt(poem_heading(poem.title, poem.form, poem.cipai))
        body_h = max(1, height - 4)
        if self.vertical:
            rows = vertical_lines(self._fmt(poem.title), self._fmt(poem.text), width)
            head = [] if poem.title else [heading, ""]
            rows = head + rows
        else:
            plain = horizontal_rows(self._fmt(poem.text), width)
            if 2 * len(plain) - 1 <= body_h - 2:
                spaced_rows: list[str] = []
                for i, r in enumerate(plain):
                    if i:
                        spaced_rows.append("")
                    spaced_rows.append(r)
                plain = spaced_rows
            rows = [heading, ""] + plain
        stars = self.ratings.get(p.id, p.rating or 0)
        sc = poem.scores or {}
        ok = "✓" if sc.get("format") and sc.get("rhyme") and sc.get("tone_relaxed") else "✗"
        meta = f"{self.index + 1}/{len(self.poems)}  {stars_text(stars)}  格律 {ok}  #{p.id}"
        text = Text(no_wrap=True, overflow="crop")
        top = max(0, (height - len(rows) - 2) // 2)
        text.append("\n" * top)
        body = rows[1:] if rows and rows[0] == heading else rows
        widest = max((cell_len(r) for r in body), default=0)
        left = " " * max(0, (width - widest) // 2)
        for r in rows:
            if r == heading and r is rows[0]:
                text.append(" " * max(0, (width - cell_len(r)) // 2) + r + "\n", style="bold underline")
            else:
                text.append(left + r + "\n", style="bold")
        text.append("\n" + " " * max(0, (width - cell_len(meta)) // 2))
        text.append(meta, style="bold yellow" if stars else "dim")
        return text

    # -- actions ---------------------------------------------------------------------------------
    def action_rate(self, stars: int) -> None:
        if self.current is not None:
            self.post_message(self.RateRequested(self.current, stars))

    def action_another(self) -> None:
        self.post_message(self.AnotherRequested())

    def action_explain(self) -> None:
        if self.current is not None:
            self.post_message(self.ExplainRequested(self.current))

    def action_revise(self) -> None:
        if self.current is not None:
            self.post_message(self.ReviseRequested(self.current))

    def action_toggle_vertical(self) -> None:
        self.vertical = not self.vertical

    def action_toggle_traditional(self) -> None:
        self.traditional = not self.traditional

    def action_next(self) -> None:
        if self.poems:
            self.index = (self.index + 1) % len(self.poems)

    def action_previous(self) -> None:
        if self.poems:
            self.index = (self.index - 1) % len(self.poems)
