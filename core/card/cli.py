"""`shiren card POEM_ID|TEXT -o poem.png`: a poem card from a stored poem or from any poem's text
(registered by core/cli.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from core.types import RequestError, ShirenError


def _poem_from_store(poem_id: int, database_url: str | None):
    from core.card import CardPoem
    from db.store import Store

    with Store(database_url) as store:
        rec = store.get_poem(poem_id)
    if rec is None:
        raise RequestError(f"no poem #{poem_id} in the database (see `shiren db export` or the app's history)")
    return CardPoem(rec.text, rec.form, rec.title, rec.cipai)


def _poem(poem: str, form: str | None, title: str, cipai: str | None, database_url: str | None):
    from core.card import CardPoem
    from core.forms import parse_form

    poem = poem.strip()
    if poem.lstrip("#").isdigit() and len(poem) <= 18:
        return _poem_from_store(int(poem.lstrip("#")), database_url)
    if not poem:
        raise RequestError('no poem given: shiren card POEM_ID or shiren card "床前明月光，…" -o poem.png')
    f = parse_form(form) if form else ""
    return CardPoem(poem, "词" if cipai else f, title.strip(), (cipai or "").strip())


def card(
    poem: Optional[str] = typer.Argument(None, help="A stored poem's id, or the poem's text (lines separated by newlines or ，。); stdin if omitted."),  # noqa: UP045
    output: Path = typer.Option(Path("poem.png"), "--output", "-o", help="The PNG file to write."),
    horizontal: bool = typer.Option(False, "--horizontal", help="Horizontal lines instead of vertical columns (竖排)."),
    tones: bool = typer.Option(False, "--tones", help="Colour each character by its 平仄 (the explain view's colours)."),
    traditional: bool = typer.Option(False, "--traditional", help="Traditional script (繁體)."),
    title: str = typer.Option("", "--title", "-t", help="The title, for a poem given as text."),
    form: Optional[str] = typer.Option(None, "--form", "-f", help="五绝 七绝 五律 七律, for a poem given as text (detected if omitted)."),  # noqa: UP045
    cipai: Optional[str] = typer.Option(None, "--cipai", help="The 词牌 of a 词 given as text."),  # noqa: UP045
    database_url: Optional[str] = typer.Option(None, "--database-url", envvar="SHIREN_DATABASE_URL", help="Where stored poems are (default: SQLite in the data dir)."),  # noqa: UP045
) -> None:
    """Render a poem as a PNG card: 楷 face, title and form, 诗人 seal, 格律 verdict."""
    from core.card import FontMissingError, card_layout, card_text, render_card

    layout = "horizontal" if horizontal else "vertical"
    script = "traditional" if traditional else "simplified"
    try:
        if poem is None:
            if sys.stdin is None or sys.stdin.isatty():
                raise RequestError('no poem given: shiren card POEM_ID or shiren card "床前明月光，…" -o poem.png')
            poem = sys.stdin.read()
        cp = _poem(poem, form, title, cipai, database_url)
        if output.is_dir():
            raise RequestError(f"{output} is a folder; give a file name such as {output / 'poem.png'}")
        t0 = time.perf_counter()
        try:
            img = render_card(cp, layout=layout, tones=tones, script=script)
        except FontMissingError as e:
            lay, footer = card_layout(cp, layout=layout, script=script)
            typer.echo(card_text(lay, footer))
            typer.echo(f"error: {e}. The card is shown as text above; no PNG was written.", err=True)
            raise typer.Exit(2) from None
        output = output.expanduser()
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".tmp")
        img.save(tmp, format="PNG")
        tmp.replace(output)
    except ShirenError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        typer.echo(f"error: cannot write {output}: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {output} ({img.width}×{img.height}, {layout}{', 平仄' if tones else ''}, "
               f"{(time.perf_counter() - t0) * 1000:.0f} ms)")
