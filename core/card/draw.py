"""Drawing a CardLayout with Pillow: paper, frame, characters, the red 诗人 seal, the footer."""

from __future__ import annotations

import functools

from PIL import Image, ImageDraw

from core.card.fonts import FontSet
from core.card.layout import FOOTER_SIZE, CardLayout

PAPER = (246, 240, 225)
INK = (38, 33, 30)
MUTED = (120, 106, 92)
FRAME = (168, 142, 112)
SEAL_RED = (178, 36, 36)
MAX_SIDE = 1280  # Telegram shows photos at up to 1280 px on the long side
MIN_CELL, MAX_CELL = 36, 76


@functools.lru_cache(maxsize=1)
def tone_colours() -> dict[str, tuple[int, int, int]]:
    """平 / 仄 / ◎ / ？ in the explain view's colours (core.gelv.render.TONE_STYLE), as RGB."""
    from rich.color import Color

    from core.gelv.render import TONE_STYLE

    out = {}
    for mark, style in TONE_STYLE.items():
        if style == "dim":
            out[mark] = (150, 150, 150)
        else:
            tc = Color.parse(style).get_truecolor()
            out[mark] = (tc.red, tc.green, tc.blue)
    return out


def cell_size(lay: CardLayout) -> int:
    """Pixels per character cell: as large as fits MAX_SIDE, within MIN_CELL..MAX_CELL."""
    return int(max(MIN_CELL, min(MAX_CELL, MAX_SIDE / max(lay.width, lay.height))))


def _centred(draw: ImageDraw.ImageDraw, text: str, font, cx: float, cy: float, fill) -> None:
    """`text` with its ink centred on (cx, cy) (for punctuation, whose ink sits off-centre in the em box)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, anchor="ls")
    draw.text((cx - (left + right) / 2, cy - (top + bottom) / 2), text, font=font, fill=fill, anchor="ls")


def _seal(img: Image.Image, fonts: FontSet, left: int, top: int, side: int) -> None:
    """A small square seal, white 诗人 on red (阴文), slightly rounded."""
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((left, top, left + side, top + side), radius=max(2, side // 10), fill=SEAL_RED)
    f = fonts.font_for("诗", int(side * 0.42))
    cx = left + side / 2
    draw.text((cx, top + side * 0.29), "诗", font=f, fill=PAPER, anchor="mm")
    draw.text((cx, top + side * 0.71), "人", font=f, fill=PAPER, anchor="mm")


def _footer(draw: ImageDraw.ImageDraw, fonts: FontSet, lay: CardLayout, s: int, width: int, text: str,
            legend: bool) -> None:
    size = max(12, int(s * FOOTER_SIZE))
    font = fonts.font(size)
    y = lay.footer_y * s
    items: list[tuple[str, tuple[int, int, int]]] = [(text, MUTED)]
    if legend:
        colours = tone_colours()
        items += [("   ", MUTED)] + [x for mark, name in (("平", "平"), ("仄", "仄"), ("◎", "可平可仄"))
                                      for x in (("●", colours[mark]), (name + "  ", MUTED))]
    total = sum(draw.textlength(t, font=font) for t, _ in items)
    while total > width - 2 * s * 0.6 and size > 10:  # shrink a long verdict until it fits
        size -= 1
        font = fonts.font(size)
        total = sum(draw.textlength(t, font=font) for t, _ in items)
    x = (width - total) / 2
    for t, colour in items:
        draw.text((x, y), t, font=font, fill=colour, anchor="lm")
        x += draw.textlength(t, font=font)


def draw_card(lay: CardLayout, fonts: FontSet, *, footer: str, tones: bool) -> Image.Image:
    """The card as an RGB image."""
    s = cell_size(lay)
    w, h = int(round(lay.width * s)), int(round(lay.height * s))
    img = Image.new("RGB", (w, h), PAPER)
    draw = ImageDraw.Draw(img)
    inset = int(s * 0.35)
    draw.rectangle((inset, inset, w - inset - 1, h - inset - 1), outline=FRAME, width=max(2, s // 24))
    inner = inset + max(4, s // 9)
    draw.rectangle((inner, inner, w - inner - 1, h - inner - 1), outline=FRAME, width=1)
    colours = tone_colours()
    for g in lay.glyphs:
        size = int(round(g.size * s * 0.92))
        font = fonts.font_for(g.char, size)
        if g.kind == "punct":
            _centred(draw, g.char, font, g.x * s, g.y * s, MUTED)
            continue
        fill = colours.get(g.tone, INK) if tones and g.tone else (MUTED if g.kind == "sub" else INK)
        draw.text((g.x * s, g.y * s), g.char, font=font, fill=fill, anchor="mm")
    left, top, side = lay.seal
    _seal(img, fonts, int(left * s), int(top * s), int(side * s))
    _footer(draw, fonts, lay, s, w, footer, tones)
    return img
