"""Revision on request: ✏️ under a poem → a line picker → that line rewritten (the rest kept, every
格律 rule kept), stored as a new poem linked to the one it came from; /revise ID [LINE] does the same."""

from __future__ import annotations

import math

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import (
    current_user,
    db,
    own_poem_from_callback,
    parse_int,
    reply,
    send,
    services,
    typing,
)
from bot.keyboards import line_picker_keyboard, poem_keyboard
from bot.limits import CapacityError
from bot.render import render_poem
from bot.texts import t
from bot.workers import Journal
from core.revise import RevisionTarget, clauses
from core.types import BusyError, ShirenError


async def revise_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """✏️ under a poem ("e:<poem id>"): ask which line to rewrite."""
    query = update.callback_query
    found = await own_poem_from_callback(update, context)
    if found is None:
        return
    _, st, rec = found
    await query.answer()
    kw = {"reply_to_message_id": query.message.message_id} if query.message else {}
    await send(context, update.effective_chat.id, t(st.lang, "revise_pick"),
               reply_markup=line_picker_keyboard(rec.id, len(clauses(rec.text)), st.lang), **kw)


async def revise_line(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A line from the picker ("ev:<poem id>:<line>"): rewrite it."""
    query = update.callback_query
    parts = query.data.split(":")
    line = parse_int(parts[2]) if len(parts) == 3 else None
    if line is None:
        await query.answer(t((await current_user(update, context))[1].lang, "expired"))
        return
    found = await own_poem_from_callback(update, context)
    if found is None:
        return
    uid, st, rec = found
    await query.answer()
    await revise_and_send(update, context, uid, st, rec, line)


async def revise_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/revise ID [LINE]: rewrite that line of your poem, or pick the line."""
    uid, st = await current_user(update, context)
    args = list(context.args or [])
    pid = parse_int(args[0].lstrip("#")) if args else None
    line = parse_int(args[1]) if len(args) > 1 else None
    if pid is None or (len(args) > 1 and line is None):
        await reply(update, context, t(st.lang, "revise_usage"))
        return
    rec = await db(context, "get_poem", pid)
    if rec is None or rec.user_id != uid:
        await reply(update, context, t(st.lang, "poem_gone" if rec is None else "not_yours"))
        return
    if line is None:
        await reply(update, context, t(st.lang, "revise_pick"),
                    reply_markup=line_picker_keyboard(rec.id, len(clauses(rec.text)), st.lang))
        return
    await revise_and_send(update, context, uid, st, rec, line)


async def revise_and_send(update: Update, context: ContextTypes.DEFAULT_TYPE, uid: int, st, rec, line: int) -> None:
    """Rate-limit, revise off the loop, store the linked revision and send it with its keyboard
    (journalled like every generation: bot.workers)."""
    await Journal.run(update, context, st.lang, _revise_and_send, update, context, uid, st, rec, line)


async def _revise_and_send(journal: Journal, update: Update, context: ContextTypes.DEFAULT_TYPE, uid: int, st, rec,
                           line: int) -> None:
    svc = services(context)
    chat_id = update.effective_chat.id
    wait = await svc.limiter.acquire(uid)
    if wait:
        await send(context, chat_id, t(st.lang, "rate_limited", seconds=max(1, math.ceil(wait))))
        return
    try:
        async with svc.cap.slot():
            async with typing(context, chat_id):
                poem = await svc.poet.arevise(rec.request, rec.text, RevisionTarget(line=line),
                                              timeout=svc.config.generation_timeout)
            pid = await db(context, "record_revision", uid, rec.id, poem, context.bot_data.get("adapter_version"))
            await journal.mark("stored", poem=pid)
    except (CapacityError, BusyError):
        await svc.limiter.refund(uid)
        await send(context, chat_id, t(st.lang, "busy"))
        return
    except ShirenError as e:  # a fixed line, a line that does not exist, a poem gone meanwhile
        await svc.limiter.refund(uid)
        await send(context, chat_id, t(st.lang, "bad_request", message=str(e)))
        return
    html = render_poem(poem.text, poem.form, title=poem.title, cipai=poem.cipai, scores=poem.scores,
                       model_version=poem.model_version, lang=st.lang, script=st.script)
    html += "\n" + t(st.lang, "revised_from", pid=rec.id, line=line)
    await send(context, chat_id, html, reply_markup=poem_keyboard(pid, None, st.lang))
