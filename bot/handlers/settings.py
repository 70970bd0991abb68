"""/settings: default form, simplified/traditional display, language, poems as text or picture cards."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, edit, remember_settings, reply
from bot.keyboards import settings_keyboard
from bot.texts import t
from core.types import FORMS

_FIELDS = {"f": ("default_form", FORMS), "s": ("script", ("simplified", "traditional")), "l": ("lang", ("zh", "en")),
           "c": ("card_default", ("0", "1"))}


def settings_text(st) -> str:
    return t(st.lang, "settings", form=st.default_form, script=t(st.lang, f"script_{st.script}"),
             language=t(st.lang, f"lang_{st.lang}"),
             delivery=t(st.lang, "delivery_card" if st.card_default else "delivery_text"))


def _keyboard(st):
    return settings_keyboard(st.default_form, st.script, st.lang, st.card_default)


async def settings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Show the settings with buttons to change them."""
    _, st = await current_user(update, context)
    await reply(update, context, settings_text(st), reply_markup=_keyboard(st))


async def change_setting(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A settings button ("s:<f|s|l|c>:<value>"): save it and refresh the message."""
    query = update.callback_query
    uid, st = await current_user(update, context)
    parts = query.data.split(":", 2)
    field = _FIELDS.get(parts[1]) if len(parts) == 3 else None
    if field is None or parts[2] not in field[1]:
        await query.answer(t(st.lang, "expired"))
        return
    value = parts[2] == "1" if field[0] == "card_default" else parts[2]
    st = await db(context, "update_settings", uid, **{field[0]: value})
    remember_settings(context, uid, st)
    await query.answer(t(st.lang, "saved"))
    await edit(query, settings_text(st), reply_markup=_keyboard(st))
