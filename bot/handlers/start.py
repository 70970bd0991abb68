"""/start (with a deep link "p<poem id>" from a poem shared inline) and /help."""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, edit, remember_settings, reply
from bot.keyboards import poem_keyboard, welcome_keyboard
from bot.render import render_record
from bot.texts import t

_POEM_LINK = re.compile(r"p(\d{1,18})")


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet the user (in their language) with a button to switch language; "/start p<id>" (the ⭐
    link under a poem shared inline) shows that poem with its rating buttons instead."""
    uid, st = await current_user(update, context)
    m = _POEM_LINK.fullmatch(context.args[0]) if context.args else None
    if m is not None:
        rec = await db(context, "get_poem", int(m.group(1)))
        if rec is None or rec.user_id != uid:
            await reply(update, context, t(st.lang, "poem_gone" if rec is None else "not_yours"))
            return
        await reply(update, context, t(st.lang, "start_poem"))
        await reply(update, context, render_record(rec, lang=st.lang, script=st.script),
                    reply_markup=poem_keyboard(rec.id, rec.rating, st.lang))
        return
    await reply(update, context, t(st.lang, "welcome"), reply_markup=welcome_keyboard(st.lang))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the commands (admins also see theirs)."""
    _, st = await current_user(update, context)
    text = t(st.lang, "help", bot=context.bot.username or "bot")
    if update.effective_user.id in context.bot_data["config"].admin_ids:
        text += t(st.lang, "admin_help")
    await reply(update, context, text)


async def welcome_language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The welcome's language button: save the language and show the welcome in it."""
    query = update.callback_query
    lang = query.data.split(":", 1)[1]
    if lang not in ("zh", "en"):
        await query.answer(t("zh", "expired"))
        return
    await query.answer()
    uid, _ = await current_user(update, context)
    remember_settings(context, uid, await db(context, "update_settings", uid, lang=lang))
    await edit(query, t(lang, "welcome"), reply_markup=welcome_keyboard(lang))
