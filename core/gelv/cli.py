"""`shiren check`: check a poem's 格律 (registered by core/cli.py as `app.command("check")(check)`)."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from core.types import RequestError


def check(
    text: Optional[str] = typer.Argument(None, help="The poem (lines separated by newlines or ，。); stdin if omitted."),  # noqa: UP045
    json_output: bool = typer.Option(False, "--json", help="Print the analysis as JSON."),
    form: Optional[str] = typer.Option(None, "--form", help="五绝 七绝 五律 七律 排律 词 (or wujue, qilv …); auto-detected if omitted."),  # noqa: UP045
    cipai: Optional[str] = typer.Option(None, "--cipai", help="词牌 for a 词, e.g. 浣溪沙, 水调歌头."),  # noqa: UP045
) -> None:
    """Check a poem's 格律: 平仄 per character, 韵脚, 粘对, 孤平, 三平尾 (or a 词 against its 词牌)."""
    try:
        if text is None:
            if sys.stdin is None or sys.stdin.isatty():
                raise RequestError('no poem given: shiren check "床前明月光，…" or pipe it on stdin')
            text = sys.stdin.read()
        from core.gelv.checker import analyze

        an = analyze(text, form=form, cipai=cipai)
    except RequestError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except (UnicodeDecodeError, OSError) as e:
        typer.echo(f"error: cannot read the poem: {e}", err=True)
        raise typer.Exit(2) from None
    except Exception as e:  # never a traceback for the user
        typer.echo(f"error: internal error while checking ({type(e).__name__}: {e}); please report it", err=True)
        raise typer.Exit(1) from None
    if json_output:
        from core.gelv.render import to_json

        typer.echo(to_json(an))
        return
    from rich.console import Console

    from core.gelv.render import render

    Console().print(render(an))
