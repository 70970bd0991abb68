"""/forget: delete everything stored about the user, after a confirmation button."""

from __future__ import annotations

import secrets

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, edit, reply
from bot.keyboards import forget_keyboard
from bot.texts import t


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Ask for confirmation (the button is good for this request only)."""
    _, st = await current_user(update, context)
    nonce = secrets.token_hex(4)
    context.user_data["forget_nonce"] = nonce
    await reply(update, context, t(st.lang, "forget_confirm"), reply_markup=forget_keyboard(nonce, st.lang))


async def forget_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The confirmation ("fg:<y|n>:<nonce>"): delete the clicking user's data, or cancel."""
    query = update.callback_query
    ud = context.user_data
    lang = ud["settings"].lang if ud.get("settings") else "zh"
    parts = query.data.split(":")
    if len(parts) != 3 or parts[1] not in ("y", "n") or not ud.get("forget_nonce") \
            or parts[2] != ud.get("forget_nonce"):
        await query.answer(t(lang, "expired"), show_alert=True)
        return
    ud.pop("forget_nonce", None)
    if parts[1] == "n":
        await query.answer()
        await edit(query, t(lang, "forget_cancelled"))
        return
    uid, _ = await current_user(update, context)
    await db(context, "forget_user", uid)
    ud.clear()
    context.bot_data["limiter"].forget(update.effective_user.id)
    await query.answer()
    await edit(query, t(lang, "forgotten"))
