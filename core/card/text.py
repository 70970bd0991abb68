"""The card as text: the same layout (vertical columns right to left, or horizontal lines) with
full-width spacing, for where no 楷 font is installed."""

from __future__ import annotations

from core.card.layout import CardLayout

_SPACE = "\u3000"


def card_text(lay: CardLayout, footer: str = "") -> str:
    """Vertical: one text column per card column, rightmost first; horizontal: one line per row."""
    if lay.layout == "vertical":
        cols: dict[float, list[tuple[float, str]]] = {}
        for g in lay.glyphs:
            if g.kind != "punct":
                cols.setdefault(round(g.x, 2), []).append((g.y, g.char))
        columns = [[c for _, c in sorted(v)] for _, v in sorted(cols.items())]  # left to right
        height = max((len(c) for c in columns), default=0)
        rows = [_SPACE.join(c[r] if r < len(c) else _SPACE for c in columns).rstrip(_SPACE) for r in range(height)]
    else:
        lines: dict[float, list[tuple[float, str]]] = {}
        for g in lay.glyphs:
            lines.setdefault(round(g.y, 2), []).append((g.x, g.char))
        rows = ["".join(c for _, c in sorted(v)) for _, v in sorted(lines.items())]
        width = max(len(r) for r in rows)
        rows = [r.center(width, _SPACE).rstrip(_SPACE) if i < 2 and len(r) < width else r for i, r in enumerate(rows)]
    out = "\n".join(rows)
    return f"{out}\n\n{footer}" if footer else out
