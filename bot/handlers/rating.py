"""The buttons under a poem that act on it: ⭐ rate (and re-rate), 🗑 delete. Ownership is checked by
the Store on every press: a user can never rate or delete someone else's poem."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, edit, parse_int
from bot.keyboards import poem_keyboard
from bot.render import render_record
from bot.texts import t
from db.store import ForbiddenError, InvalidValueError, NotFoundError


async def rate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """⭐n under a poem ("r:<poem id>:<stars>"): store the rating now and show it in the message."""
    query = update.callback_query
    uid, st = await current_user(update, context)
    parts = query.data.split(":")
    pid = parse_int(parts[1]) if len(parts) == 3 else None
    stars = parse_int(parts[2]) if len(parts) == 3 else None
    if pid is None or stars is None or not 1 <= stars <= 5:
        await query.answer(t(st.lang, "expired"))
        return
    try:
        await db(context, "rate", uid, pid, stars)
    except ForbiddenError:
        await query.answer(t(st.lang, "not_yours"), show_alert=True)
        return
    except NotFoundError:
        await query.answer(t(st.lang, "poem_gone"), show_alert=True)
        return
    except InvalidValueError:
        await query.answer(t(st.lang, "expired"))
        return
    await query.answer(t(st.lang, "rated", stars=stars))
    rec = await db(context, "get_poem", pid)
    if rec is not None:
        await edit(query, render_record(rec, lang=st.lang, script=st.script),
                   reply_markup=poem_keyboard(pid, rec.rating, st.lang))


async def delete(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """🗑 under a poem ("d:<poem id>"): delete it (one's own only) and its rating."""
    query = update.callback_query
    uid, st = await current_user(update, context)
    pid = parse_int(query.data.split(":", 1)[1])
    owner = await db(context, "poem_owner", pid) if pid is not None else None
    if owner is None:
        await query.answer(t(st.lang, "poem_gone"), show_alert=True)
        return
    if owner != uid or not await db(context, "delete_poem", uid, pid):
        await query.answer(t(st.lang, "not_yours"), show_alert=True)
        return
    await query.answer(t(st.lang, "deleted"))
    await edit(query, t(st.lang, "deleted"))
