"""Where everything on a poem card goes, in units of one character cell (no font, no pixels).

Vertical (竖排): the title column on the right, then one column per clause, read top to bottom,
columns right to left; a 词's sentences are packed into columns of at most `rows` characters
(a long clause wraps into the next column) and very wide poems are stacked in blocks.
Horizontal: the title on top, then one line (a couplet) per row for 近体, a 词's sentences packed
into rows. Punctuation hangs beside the last character of its clause in vertical layout and takes
a cell of its own in horizontal layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LAYOUTS = ("vertical", "horizontal")
SENTENCE_END = "。？！；"

# Spacing, in character cells.
MARGIN = 1.1
V_ROW = 1.12  # vertical: from one character to the next down a column
V_COL = 1.6  # vertical: from one column to the next
V_BLOCK_GAP = 1.0
H_CHAR = 1.08
H_ROW = 1.75
TITLE_SIZE = 1.12
SUB_SIZE = 0.6
PUNCT_SIZE = 0.62
SEAL = 1.0
FOOTER_SIZE = 0.36
FOOTER_H = 1.5


@dataclass(frozen=True)
class Clause:
    """A clause of the poem: its characters (as displayed), their tone marks, its punctuation."""

    chars: str
    tones: tuple[str, ...]
    punct: str = ""

    @property
    def ends_sentence(self) -> bool:
        return bool(self.punct) and self.punct[-1] in SENTENCE_END


@dataclass(frozen=True)
class Glyph:
    char: str
    x: float  # the centre of its cell, in cells
    y: float
    size: float = 1.0  # in cells
    tone: str = ""  # 平 仄 ◎ ？ ("" for titles, punctuation and the footer)
    kind: str = "poem"  # poem | punct | title | sub


@dataclass
class CardLayout:
    width: float
    height: float
    glyphs: list[Glyph] = field(default_factory=list)
    seal: tuple[float, float, float] = (0.0, 0.0, SEAL)  # left, top, side
    footer_y: float = 0.0  # the centre line of the footer
    layout: str = "vertical"


def _items(c: Clause) -> list[tuple[str, str, str]]:
    items = [(ch, tone, "") for ch, tone in zip(c.chars, c.tones, strict=True)]
    if items and c.punct:
        items[-1] = (items[-1][0], items[-1][1], c.punct)
    return items


def _pack(clauses: list[Clause], limit: int, *, punct_cells: bool, per_clause: bool) -> list[list[tuple[str, str, str]]]:
    """Clauses → runs (columns or rows) of (char, tone, punct-after) with at most `limit` cells each.

    per_clause: each clause starts a new run (近体 vertical). Otherwise clauses fill runs and every
    sentence starts a new one; a clause that does not fit in what is left of a run starts the next."""
    runs: list[list[tuple[str, str, str]]] = []
    cur: list[tuple[str, str, str]] = []
    used = 0

    def cells(c: Clause) -> int:
        return len(c.chars) + (1 if punct_cells and c.punct else 0)

    for c in clauses:
        n = cells(c)
        if cur and (per_clause or used + n > limit):
            runs.append(cur)
            cur, used = [], 0
        for item in _items(c):
            if used + (1 if not (punct_cells and item[2]) else 2) > limit and cur:
                runs.append(cur)
                cur, used = [], 0
            cur.append(item)
            used += 1 + (1 if punct_cells and item[2] else 0)
        if c.ends_sentence and not per_clause:
            runs.append(cur)
            cur, used = [], 0
    if cur:
        runs.append(cur)
    return runs


def _title_glyphs_vertical(title: str, sub: str, x_right: float, top: float, col_h: float) -> tuple[list[Glyph], float]:
    """The title (and the form under it) in columns from `x_right` leftwards, smaller when a long
    title would need more than two columns; returns the glyphs and the x of the leftmost one."""
    size = TITLE_SIZE
    while size > 0.6 and -(-len(title) // max(1, int(col_h / (V_ROW * size)))) > 2:
        size -= 0.08
    pitch = V_ROW * size
    per_col = max(1, int(col_h / pitch))
    glyphs: list[Glyph] = []
    x, y = x_right, top + pitch / 2
    for i, ch in enumerate(title):
        if i and i % per_col == 0:
            x -= V_COL
            y = top + pitch / 2
        glyphs.append(Glyph(ch, x, y, size, kind="title"))
        y += pitch
    if sub:
        y += 0.4 - pitch / 2 + V_ROW * SUB_SIZE / 2
        if y + (len(sub) - 0.5) * V_ROW * SUB_SIZE > top + col_h + 0.01:
            x -= V_COL
            y = top + V_ROW * SUB_SIZE / 2
        for ch in sub:
            glyphs.append(Glyph(ch, x, y, SUB_SIZE, kind="sub"))
            y += V_ROW * SUB_SIZE
    return glyphs, x


def vertical(clauses: list[Clause], title: str, sub: str, *, jinti: bool) -> CardLayout:
    """竖排: columns right to left, the title column first."""
    total = sum(len(c.chars) for c in clauses)
    if jinti:
        rows = max(len(c.chars) for c in clauses)
        runs = _pack(clauses, rows, punct_cells=False, per_clause=True)
    else:
        # 词: the column height that gives the most nearly square card (wide cards are stacked).
        best = None
        sentence, longest = 0, 1
        for c in clauses:
            sentence += len(c.chars)
            longest = max(longest, sentence)
            if c.ends_sentence:
                sentence = 0
        for rows in range(min(8, longest), 15):
            r = _pack(clauses, rows, punct_cells=False, per_clause=False)
            w = len(r) * V_COL
            h = rows * V_ROW
            score = abs(w / h - 1.0) + 0.02 * rows
            if best is None or score < best[0]:
                best = (score, rows, r)
        _, rows, runs = best
        rows = max(len(r) for r in runs)
    rows = max(rows, 5)
    col_h = rows * V_ROW
    _, leftmost = _title_glyphs_vertical(title, sub, 0.0, 0.0, col_h)
    title_cols = 1 + round(-leftmost / V_COL)
    max_cols = 12 if total > 60 else 16
    blocks = [runs[i:i + max_cols] for i in range(0, len(runs), max_cols)]
    widest = max(len(b) for b in blocks)
    width = 2 * MARGIN + title_cols * V_COL + 0.4 + widest * V_COL
    height = 2 * MARGIN + len(blocks) * col_h + (len(blocks) - 1) * V_BLOCK_GAP + FOOTER_H
    lay = CardLayout(width, height, layout="vertical")
    top = MARGIN
    x_right = width - MARGIN - V_COL / 2
    glyphs, x_title_left = _title_glyphs_vertical(title, sub, x_right, top, col_h)
    lay.glyphs += glyphs
    x0 = x_title_left - V_COL - 0.4
    for b, block in enumerate(blocks):
        btop = top + b * (col_h + V_BLOCK_GAP)
        for i, run in enumerate(block):
            x = x0 - i * V_COL
            for j, (ch, tone, punct) in enumerate(run):
                y = btop + (j + 0.5) * V_ROW
                lay.glyphs.append(Glyph(ch, x, y, 1.0, tone))
                if punct:
                    lay.glyphs.append(Glyph(punct, x + 0.62, y + 0.32, PUNCT_SIZE, kind="punct"))
    lay.footer_y = height - MARGIN * 0.55 - FOOTER_H / 2 + 0.3
    # The seal closes the title column (or sits under the last title column when that one is full).
    title_bottom = max((g.y + g.size * V_ROW / 2 for g in glyphs if round(g.x, 2) == round(x_title_left, 2)),
                       default=top)
    seal_top = top + col_h - SEAL
    if seal_top < title_bottom + 0.3:
        seal_top = top + col_h + 0.15
        lay.height = height = height + SEAL * 0.6
        lay.footer_y += SEAL * 0.6
    lay.seal = (x_title_left - SEAL / 2, seal_top, SEAL)
    return lay


def horizontal(clauses: list[Clause], title: str, sub: str, *, jinti: bool) -> CardLayout:
    """横排: the title centred on top, then the lines."""
    if jinti:
        longest = max(len(c.chars) + 1 for c in clauses)
        per_row = 2 if 2 * longest <= 16 else 1  # a couplet per row when it fits
        runs = [[item for c in clauses[i:i + per_row] for item in _items(c)]
                for i in range(0, len(clauses), per_row)]
    else:
        limit = 14 if sum(len(c.chars) for c in clauses) > 60 else 12
        runs = _pack(clauses, limit, punct_cells=True, per_clause=False)
    widest = max(sum(1 + (1 if p else 0) for _, _, p in run) for run in runs)
    text_w = widest * H_CHAR
    title_w = len(title) * TITLE_SIZE * 1.05
    width = 2 * MARGIN + max(text_w, title_w, 8.0)
    title_h = TITLE_SIZE * 1.3 + (SUB_SIZE * 1.6 if sub else 0) + 0.6
    height = 2 * MARGIN + title_h + len(runs) * H_ROW + SEAL * 0.5 + FOOTER_H
    lay = CardLayout(width, height, layout="horizontal")
    cx = width / 2
    y = MARGIN + TITLE_SIZE / 2
    for i, ch in enumerate(title):
        lay.glyphs.append(Glyph(ch, cx + (i - (len(title) - 1) / 2) * TITLE_SIZE * 1.05, y, TITLE_SIZE, kind="title"))
    if sub:
        y += TITLE_SIZE / 2 + 0.55 + SUB_SIZE / 2
        for i, ch in enumerate(sub):
            lay.glyphs.append(Glyph(ch, cx + (i - (len(sub) - 1) / 2) * SUB_SIZE * 1.1, y, SUB_SIZE, kind="sub"))
    y0 = MARGIN + title_h + H_ROW / 2
    x_left = (width - text_w) / 2
    for r, run in enumerate(runs):
        x = x_left + H_CHAR / 2
        y = y0 + r * H_ROW
        for ch, tone, punct in run:
            lay.glyphs.append(Glyph(ch, x, y, 1.0, tone))
            x += H_CHAR
            if punct:
                lay.glyphs.append(Glyph(punct, x, y, 1.0, kind="punct"))
                x += H_CHAR
    lay.footer_y = height - MARGIN * 0.55 - FOOTER_H / 2 + 0.3
    last_row = y0 + (len(runs) - 1) * H_ROW
    lay.seal = (x_left + text_w - SEAL, last_row + 0.75, SEAL)
    return lay


def plan(clauses: list[Clause], title: str, sub: str, *, layout: str = "vertical", jinti: bool = True) -> CardLayout:
    if layout not in LAYOUTS:
        from core.types import RequestError

        raise RequestError(f"unknown card layout {layout!r}; one of {', '.join(LAYOUTS)}")
    if not clauses:
        from core.types import RequestError

        raise RequestError("the poem has no lines to put on a card")
    fn = vertical if layout == "vertical" else horizontal
    return fn(clauses, title, sub, jinti=jinti)
