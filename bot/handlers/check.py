"""/check (a poem, or a reply to one) and the "explain" button: the 格律 engine's analysis."""

from __future__ import annotations

import asyncio
from html import escape

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import command_text, current_user, own_poem_from_callback, reply, send
from bot.render import for_script, poem_text_from_message, render_analysis
from bot.texts import t
from core.forms import parse_form
from core.gelv import cipai_patterns
from core.types import RequestError


def split_hint(text: str) -> tuple[str | None, str | None, str]:
    """"浣溪沙 <poem>" / "七绝\\n<poem>" → (form, cipai, poem); no hint → (None, None, text)."""
    parts = text.split(maxsplit=1)
    if len(parts) == 2 and len(parts[0]) <= 8:
        head, rest = parts
        try:
            return parse_form(head), None, rest
        except RequestError:
            pass
        try:
            return None, cipai_patterns(head)[0].name, rest
        except RequestError:
            pass
    return None, None, text


async def check(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/check <poem> or /check in reply to a poem: its 格律 analysis."""
    _, st = await current_user(update, context)
    text = command_text(update)
    msg = update.effective_message
    if not text and msg.reply_to_message is not None:
        text = poem_text_from_message(msg.reply_to_message.text or msg.reply_to_message.caption or "")
    if not text:
        await reply(update, context, t(st.lang, "check_usage"))
        return
    limit = context.bot_data["config"].max_text_chars
    if len(text) > limit:
        await reply(update, context, t(st.lang, "too_long", n=len(text), limit=limit))
        return
    form, cipai, poem = split_hint(text)
    if form == "词":
        form = None
    try:
        an = await asyncio.to_thread(context.bot_data["poet"].check, poem, form, cipai)
    except RequestError as e:
        await reply(update, context, t(st.lang, "bad_request", message=str(e)))
        return
    await reply(update, context, render_analysis(an, lang=st.lang, script=st.script),
                reply_to_message_id=msg.message_id)


async def explain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """"Explain" under a poem ("x:<poem id>"): the poem's 格律 annotation (owner only)."""
    query = update.callback_query
    found = await own_poem_from_callback(update, context)
    if found is None:
        return
    uid, st, rec = found
    await query.answer()
    form = None if rec.form == "词" else rec.form
    try:
        an = await asyncio.to_thread(context.bot_data["poet"].check, rec.text, form, rec.cipai or None)
    except RequestError as e:
        await send(context, update.effective_chat.id, t(st.lang, "bad_request", message=str(e)))
        return
    kw = {"reply_to_message_id": query.message.message_id} if query.message else {}
    html = render_analysis(an, lang=st.lang, script=st.script)
    doubts = await asyncio.to_thread(doubted_chars, context.bot_data["poet"], rec)
    if doubts:
        html += "\n\n" + t(st.lang, "critic_doubts", chars=for_script(escape(doubts), st.script))
    await send(context, update.effective_chat.id, html, **kw)


def doubted_chars(poet, rec) -> str:
    """「X」(第n句) … for the characters the critic doubts most ('' without a critic)."""
    from core.types import Poem
    from core.write_cli import doubt_places

    return doubt_places(poet, Poem(text=rec.text, form=rec.form, title=rec.title, cipai=rec.cipai))
