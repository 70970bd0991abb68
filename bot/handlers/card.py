"""Poem cards in the chat: the 🖼 button under a poem, and poems sent as cards by default
(/settings). The card is drawn off the event loop; without a 楷 font the poem stays text."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from telegram import Message, Update
from telegram.constants import ChatAction, ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.handlers.common import db, own_poem_from_callback, send
from bot.render import caption
from bot.texts import t
from core.card import CardPoem, FontMissingError, render_card_png

log = logging.getLogger("bot.card")

CARD_BUSY_TTL_S = 60.0  # a card being drawn holds the user's "card_busy" state at most this long


async def card_png(text: str, form: str, title: str = "", cipai: str = "", script: str = "simplified") -> bytes:
    """The poem's card (vertical, PNG), drawn in a worker thread. FontMissingError without a 楷 font."""
    poem = CardPoem(text, form, title, cipai)
    return await asyncio.to_thread(render_card_png, poem, layout="vertical", script=script)


async def send_card(context: ContextTypes.DEFAULT_TYPE, chat_id: int, rec: Any, html: str, script: str,
                    **kw: Any) -> Message | None:
    """Send `rec` (a stored poem or a Poem) as a photo with `html` as its caption; None (after
    telling the user once why) when there is no 楷 font, so the caller sends text instead."""
    try:
        png = await card_png(rec.text, rec.form, rec.title, rec.cipai, script)
    except FontMissingError as e:
        log.warning("no card: %s", e)
        return None
    try:
        await context.bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO)
    except TelegramError:
        pass  # a lost chat action is harmless
    return await context.bot.send_photo(chat_id, png, caption=caption(html), parse_mode=ParseMode.HTML, **kw)


async def card_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """🖼 under a poem ("c:<poem id>"): the poem as a picture card, with its rating buttons."""
    from bot.keyboards import poem_keyboard
    from bot.render import render_record

    query = update.callback_query
    found = await own_poem_from_callback(update, context)
    if found is None:
        return
    _, st, rec = found
    await query.answer(t(st.lang, "card_sending"))
    uid = rec.user_id
    # One card at a time per user, on whichever worker: presses meanwhile are no-ops.
    if not await db(context, "claim_state", uid, "card_busy", CARD_BUSY_TTL_S):
        return
    try:
        html = render_record(rec, lang=st.lang, script=st.script)
        kw = {"reply_to_message_id": query.message.message_id} if query.message else {}
        sent = await send_card(context, update.effective_chat.id, rec, html, st.script,
                               reply_markup=poem_keyboard(rec.id, rec.rating, st.lang), **kw)
    finally:
        await db(context, "pop_state", uid, "card_busy")
    if sent is None:
        await send(context, update.effective_chat.id, t(st.lang, "card_no_font"))
