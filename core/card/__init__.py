"""Poem cards: a poem as a PNG picture to save, post or send (no network I/O).

    from core.card import CardPoem, render_card_png
    png = render_card_png(CardPoem(text, "七绝", title="春夜"), layout="vertical", tones=True)

Vertical (竖排, right to left) or horizontal, in a 楷 face found on this machine (core.card.fonts),
with the title and form, a red 诗人 seal, optional 平仄 colouring (the explain view's colours) and a
footer with the 格律 verdict; traditional script on request. Without a 楷 font, `FontMissingError`
says how to install one and `card_text` gives the same card as text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.card.fonts import FontMissingError, FontSet, font_available
from core.card.layout import LAYOUTS, CardLayout, Clause, plan
from core.card.text import card_text
from core.types import RequestError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["LAYOUTS", "CardLayout", "CardPoem", "FontMissingError", "card_layout", "card_text", "font_available",
           "render_card", "render_card_png"]

SCRIPTS = ("simplified", "traditional")


@dataclass(frozen=True)
class CardPoem:
    """What goes on a card: the poem (lines separated by newlines or ，。), its form and title."""

    text: str
    form: str = ""  # 五绝 七绝 五律 七律 词 (empty: detected by the 格律 engine)
    title: str = ""
    cipai: str = ""


def _analysis(poem: CardPoem):
    from core.gelv import analyze

    form = None if poem.form in ("", "词") else poem.form
    return analyze(poem.text, form=form, cipai=poem.cipai or None)


def _to_script(script: str):
    if script not in SCRIPTS:
        raise RequestError(f"unknown script {script!r}; one of {', '.join(SCRIPTS)}")
    if script == "simplified":
        return lambda s: s
    from core.script import to_traditional

    return to_traditional


def card_layout(poem: CardPoem, *, layout: str = "vertical", script: str = "simplified") -> tuple[CardLayout, str]:
    """(CardLayout, footer text) for `poem`. RequestError for text that is not a poem."""
    an = _analysis(poem)
    if not an.lines:
        raise RequestError("the text has no lines of Chinese characters to put on a card")
    conv = _to_script(script)
    clauses = []
    for la in an.lines:
        chars = "".join(cn.char for cn in la.chars)
        shown = conv(chars)
        if len(shown) != len(chars):  # a phrase conversion changed the length: convert char by char
            shown = "".join(conv(c) for c in chars)
        clauses.append(Clause(shown, tuple(cn.tone_mark for cn in la.chars), la.punct))
    jinti = an.is_jinti or an.form in ("五绝", "七绝", "五律", "七律")
    if an.cipai or poem.form == "词":
        main, sub = an.cipai or poem.cipai or "词", poem.title
    else:
        main, sub = poem.title or "无题", poem.form or an.form
    same_len = len({len(c.chars) for c in clauses}) == 1
    lay = plan(clauses, conv(main), conv(sub), layout=layout, jinti=jinti and same_len)
    footer = conv("格律 · " + (an.verdict or "—"))
    return lay, footer


def render_card(poem: CardPoem, *, layout: str = "vertical", tones: bool = False, script: str = "simplified",
                fonts: FontSet | None = None) -> Image.Image:
    """The card as a PIL RGB image. FontMissingError without a 楷 font; RequestError for bad input."""
    from core.card.draw import draw_card

    lay, footer = card_layout(poem, layout=layout, script=script)
    return draw_card(lay, fonts or FontSet.load(), footer=footer, tones=tones)


def render_card_png(poem: CardPoem, *, layout: str = "vertical", tones: bool = False,
                    script: str = "simplified", fonts: FontSet | None = None) -> bytes:
    """The card as PNG bytes (a few hundred KB at most)."""
    img = render_card(poem, layout=layout, tones=tones, script=script, fonts=fonts)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
