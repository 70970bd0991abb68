"""`shiren bot`: run the Telegram bot (the lead registers `bot` below as that subcommand)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional  # noqa: UP035 — Typer reads these annotations

import typer


def bot(
    api_url: Optional[str] = typer.Option(  # noqa: UP045
        None, "--api-url", envvar="TELEGRAM_API_URL",
        help="Bot API server, e.g. http://127.0.0.1:8081/bot{token} for a self-hosted one "
             "(default: Telegram's).",
    ),
    webhook_url: Optional[str] = typer.Option(  # noqa: UP045
        None, "--webhook-url", envvar="SHIREN_BOT_WEBHOOK_URL",
        help="Receive updates on this public HTTPS URL instead of long polling.",
    ),
    port: int = typer.Option(8443, "--port", help="Local port of the webhook listener."),
    database_url: Optional[str] = typer.Option(  # noqa: UP045
        None, "--database-url", envvar="SHIREN_DATABASE_URL",
        help="SQLAlchemy URL (default: SQLite in the Shiren data dir), e.g. postgresql+psycopg://…",
    ),
    model_dir: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--model-dir", envvar="SHIREN_MODEL_DIR", help="Base model directory (default: the shipped one).",
    ),
) -> None:
    """Run the Telegram bot. The token comes from TELEGRAM_BOT_TOKEN (never from the command line)."""
    from bot.config import BotConfig, ConfigError

    try:
        config = BotConfig.from_env(api_url=api_url, webhook_url=webhook_url, port=port,
                                    database_url=database_url, model_dir=model_dir)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None

    import importlib.util

    if config.webhook_url and importlib.util.find_spec("tornado") is None:
        typer.echo("error: webhook mode needs tornado: pip install 'python-telegram-bot[webhooks]'", err=True)
        raise typer.Exit(2)

    from telegram.error import InvalidToken

    from bot.app import load_poet, main
    from core.types import ShirenError
    from db.store import open_store

    try:
        store = open_store(config.database_url)
        poet = load_poet(config.model_dir, store)
    except ShirenError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    from core.cpu_share import usable_cores
    from training.feedback import FeedbackConfig, bot_round

    # Scheduled rounds (SHIREN_FEEDBACK_EVERY_HOURS) skip themselves below this many new ratings.
    min_new = int(os.environ.get("SHIREN_FEEDBACK_MIN_RATINGS") or 20)
    # A round trains beside the poem requests: it keeps one core free for them (docs/bench.md).
    round_cfg = FeedbackConfig(threads=max(1, usable_cores() - 1))

    def reload():
        """Load the poet again with the now-active adapter (after /model promote, rollback or /retrain)."""
        return load_poet(config.model_dir, store)

    try:
        main(config, poet=poet, store=store, retrain=lambda: bot_round(store, config=round_cfg), reload=reload,
             scheduled_round=lambda: bot_round(store, min_new_ratings=min_new, config=round_cfg))
    except InvalidToken:
        typer.echo("error: Telegram rejected TELEGRAM_BOT_TOKEN (revoked or mistyped?) — check it with "
                   "@BotFather", err=True)
        raise typer.Exit(2) from None
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    finally:
        poet.close()
        store.close()

