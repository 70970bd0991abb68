"""/forget: delete everything stored about the user, after a confirmation button."""

from __future__ import annotations

import secrets

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, edit, reply
from bot.keyboards import forget_keyboard
from bot.texts import t

FORGET_TTL_S = 3600.0  # the confirmation button works for an hour (bot_state "forget")


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Ask for confirmation (the button is good for this request only)."""
    uid, st = await current_user(update, context)
    nonce = secrets.token_hex(4)
    await db(context, "put_state", uid, "forget", {"nonce": nonce}, FORGET_TTL_S)
    await reply(update, context, t(st.lang, "forget_confirm"), reply_markup=forget_keyboard(nonce, st.lang))


async def forget_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The confirmation ("fg:<y|n>:<nonce>"): delete the clicking user's data, or cancel."""
    query = update.callback_query
    uid, st = await current_user(update, context)
    parts = query.data.split(":")
    if len(parts) != 3 or parts[1] not in ("y", "n"):
        await query.answer(t(st.lang, "expired"), show_alert=True)
        return
    saved = await db(context, "get_state", uid, "forget")
    if saved is None or saved.get("nonce") != parts[2] or await db(context, "pop_state", uid, "forget") != saved:
        await query.answer(t(st.lang, "expired"), show_alert=True)  # stale, forged, or used meanwhile
        return
    if parts[1] == "n":
        await query.answer()
        await edit(query, t(st.lang, "forget_cancelled"))
        return
    await db(context, "forget_user", uid)  # its bot_state (rate bucket, pickers, …) goes with it
    context.shiren_user = None
    await query.answer()
    await edit(query, t(st.lang, "forgotten"))
