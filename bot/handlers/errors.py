"""The one error handler, and the replies to input the bot does not handle."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import known_lang, reply
from bot.texts import t

log = logging.getLogger("bot.errors")


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the traceback; tell the user (if any) a short apology. Never raises."""
    log.error("error while handling an update", exc_info=context.error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    try:
        if update.callback_query is not None:
            try:
                await update.callback_query.answer()
            except Exception:  # noqa: BLE001 — already answered, or too old
                pass
        await reply(update, context, t(await known_lang(update, context), "error"))
    except Exception:  # noqa: BLE001
        log.warning("could not send the apology", exc_info=True)


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any command the bot does not know (or that the user may not use)."""
    await reply(update, context, t(await known_lang(update, context), "unknown_command"))


async def not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice, files …: say that the bot reads text only."""
    await reply(update, context, t(await known_lang(update, context), "text_only"))


async def group_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command in a group: point to the private chat (commands for other bots are ignored)."""
    text = update.effective_message.text or ""
    target = text.split(maxsplit=1)[0].partition("@")[2] if text else ""
    if target and target.lower() != (context.bot.username or "").lower():
        return
    await reply(update, context, t(await known_lang(update, context), "private_only"))


async def stale_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Callback data no handler recognises (old keyboard, forged data): answer and do nothing."""
    await update.callback_query.answer(t(await known_lang(update, context), "expired"))
