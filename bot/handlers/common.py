"""Shared helpers for handlers: services from bot_data, the user's id and settings, typing, replies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.config import BotConfig
from bot.limits import ConcurrencyCap, RateLimiter
from db.store import UserSettings

log = logging.getLogger("bot")

TYPING_EVERY = 4.5  # Telegram shows "typing…" for about 5 s per chat action


def worker_id(context: ContextTypes.DEFAULT_TYPE) -> str:
    """This worker's name in leases and the request journal."""
    return context.bot_data["worker"]


@dataclass
class Services:
    config: BotConfig
    poet: Any
    store: Any
    limiter: RateLimiter
    cap: ConcurrencyCap


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    d = context.bot_data
    return Services(d["config"], d["poet"], d["store"], d["limiter"], d["cap"])


async def db(context: ContextTypes.DEFAULT_TYPE, method: str, *args, **kwargs):
    """Call a (synchronous) Store method in a worker thread: the event loop never blocks on SQL."""
    fn = getattr(context.bot_data["store"], method)
    return await asyncio.to_thread(fn, *args, **kwargs)


async def current_user(update: Update, context: ContextTypes.DEFAULT_TYPE) -> tuple[int, UserSettings]:
    """The Store id and settings of the Telegram user behind `update` (created on first contact).

    Read from the database once per update (never cached across updates: another worker may have
    changed the settings, or /forget removed the user, since)."""
    found = getattr(context, "shiren_user", None)
    if found is None:
        user = update.effective_user
        name = " ".join(x for x in (user.first_name, user.last_name) if x) or (user.username or "")
        found = await db(context, "ensure_user_settings", "telegram", str(user.id), name[:64])
        context.shiren_user = found
    return found


def remember_settings(context: ContextTypes.DEFAULT_TYPE, uid: int, settings: UserSettings) -> None:
    """After a settings change: the rest of this update sees the new settings."""
    context.shiren_user = (uid, settings)


async def known_lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str:
    """The user's language without creating a user row; zh when unknown (or the database fails)."""
    found = getattr(context, "shiren_user", None)
    if found is not None:
        return found[1].lang
    if update.effective_user is None:
        return "zh"
    try:
        st = await db(context, "find_settings", "telegram", str(update.effective_user.id))
    except Exception:  # noqa: BLE001 — an apology must not fail on the database too
        log.warning("could not read the user's language", exc_info=True)
        return "zh"
    return st.lang if st is not None else "zh"


async def send(context: ContextTypes.DEFAULT_TYPE, chat_id: int, text: str, **kw):
    return await context.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML,
                                          disable_web_page_preview=True, **kw)


async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str, **kw):
    return await send(context, update.effective_chat.id, text, **kw)


async def edit(query, text: str, **kw) -> None:
    """Edit a callback's message (a photo's caption for a card); "message is not modified" (same
    rating twice) is not an error."""
    try:
        if query.message is not None and getattr(query.message, "photo", None):
            from bot.render import caption

            await query.edit_message_caption(caption(text), parse_mode=ParseMode.HTML, **kw)
        else:
            await query.edit_message_text(text, parse_mode=ParseMode.HTML, disable_web_page_preview=True, **kw)
    except BadRequest as e:
        if "not modified" not in str(e).lower():
            raise


def command_text(update: Update) -> str:
    """Everything after the command word, newlines kept (context.args loses them)."""
    text = (update.effective_message.text or "") if update.effective_message else ""
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


@contextlib.asynccontextmanager
async def typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int):
    """Show "typing…" in the chat until the block ends."""

    async def keep_typing() -> None:
        while True:
            try:
                await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
            except TelegramError as e:  # a lost chat action is harmless
                log.debug("chat action failed: %s", e)
            await asyncio.sleep(TYPING_EVERY)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def parse_int(s: str) -> int | None:
    """A positive int from callback data, or None when it is not one (forged or garbled data)."""
    if not s.isdigit() or len(s) > 18:
        return None
    return int(s)


async def own_poem_from_callback(update: Update, context: ContextTypes.DEFAULT_TYPE):
    """(user id, settings, poem) for a button "<prefix>:<poem id>[:…]" on the user's own poem; None after
    answering the query with why not (gone, or someone else's: stale or forged callback data)."""
    from bot.texts import t

    query = update.callback_query
    uid, st = await current_user(update, context)
    pid = parse_int(query.data.split(":")[1])
    rec = await db(context, "get_poem", pid) if pid is not None else None
    if rec is None:
        await query.answer(t(st.lang, "poem_gone"), show_alert=True)
        return None
    if rec.user_id != uid:
        await query.answer(t(st.lang, "not_yours"), show_alert=True)
        return None
    return uid, st, rec
