"""/start and /help."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, edit, reply
from bot.keyboards import welcome_keyboard
from bot.texts import t


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet the user (in their language) with a button to switch language."""
    _, st = await current_user(update, context)
    await reply(update, context, t(st.lang, "welcome"), reply_markup=welcome_keyboard(st.lang))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the commands (admins also see theirs)."""
    _, st = await current_user(update, context)
    text = t(st.lang, "help")
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
    context.user_data["settings"] = await db(context, "update_settings", uid, lang=lang)
    await edit(query, t(lang, "welcome"), reply_markup=welcome_keyboard(lang))
