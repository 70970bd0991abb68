"""Writing poems: plain-text topics, /poem with a form picker, /acrostic, /ci (and 词牌 browsing),
/continue, and the "another" button. Every generation goes through `write_and_send`."""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, edit, own_poem_from_callback, reply, send, services, typing
from bot.keyboards import (
    CIPAI_PAGE,
    cipai_browse_keyboard,
    cipai_pick_keyboard,
    cipai_write_keyboard,
    form_keyboard,
    poem_keyboard,
)
from bot.limits import CapacityError
from bot.render import for_script, render_poem
from bot.texts import t
from bot.workers import Journal
from core.forms import parse_form
from core.gelv import cipai_patterns, top_cipai
from core.script import to_simplified
from core.types import FORMS, MAX_TITLE_CHARS, BusyError, PoemRequest, RequestError, ShirenError

log = logging.getLogger("bot.poems")

JINTI = ("五绝", "七绝", "五律", "七律")
MAX_PENDING = 20  # remembered /poem pickers per user
PENDING_TTL_S = 86400.0  # a picker's buttons work for a day (bot_state "pending")
BROWSE_PAGES = 5  # /ci browsing: the most common 5 × 12 词牌


def default_cipai() -> str:
    return top_cipai(1)[0]


async def write_and_send(update: Update, context: ContextTypes.DEFAULT_TYPE, req: PoemRequest,
                         reply_to: int | None = None) -> int | None:
    """Validate, rate-limit, generate (off the loop, with a typing indicator), store and send one poem
    with its keyboard, journalled (bot.workers: a redelivered update is dropped, a dead worker's request
    answered by another). Returns the poem id, or None when the user got an explanation instead."""
    _, st = await current_user(update, context)
    return await Journal.run(update, context, st.lang, _write_and_send, update, context, req, reply_to)


async def _write_and_send(journal: Journal, update: Update, context: ContextTypes.DEFAULT_TYPE, req: PoemRequest,
                          reply_to: int | None) -> int | None:
    svc = services(context)
    chat_id = update.effective_chat.id
    uid, st = await current_user(update, context)
    try:
        req = await _validate(svc.poet, req)
    except RequestError as e:
        await send(context, chat_id, t(st.lang, "bad_request", message=str(e)))
        return None
    wait = await svc.limiter.acquire(uid)
    if wait:
        await send(context, chat_id, t(st.lang, "rate_limited", seconds=max(1, math.ceil(wait))))
        return None
    try:
        async with svc.cap.slot():
            async with typing(context, chat_id):
                poems = await svc.poet.awrite(req, timeout=svc.config.generation_timeout)
            ids = await db(context, "record_poems", uid, req, poems[:1],
                           context.bot_data.get("adapter_version"))
            await journal.mark("stored", poem=ids[0])
    except (CapacityError, BusyError):
        await svc.limiter.refund(uid)
        await send(context, chat_id, t(st.lang, "busy"))
        return None
    except ShirenError as e:  # RequestError, "could not complete", NotFound after a concurrent /forget
        await svc.limiter.refund(uid)
        await send(context, chat_id, t(st.lang, "bad_request", message=str(e)))
        return None
    poem, pid = poems[0], ids[0]
    html = render_poem(poem.text, poem.form, title=poem.title, cipai=poem.cipai, scores=poem.scores,
                       model_version=poem.model_version, lang=st.lang, script=st.script)
    kw = {"reply_to_message_id": reply_to} if reply_to else {}
    if st.card_default:
        from bot.handlers.card import send_card

        if await send_card(context, chat_id, poem, html, st.script,
                           reply_markup=poem_keyboard(pid, None, st.lang), **kw) is not None:
            return pid
        html += "\n\n" + t(st.lang, "card_no_font")
    await send(context, chat_id, html, reply_markup=poem_keyboard(pid, None, st.lang), **kw)
    return pid


async def _validate(poet, req: PoemRequest) -> PoemRequest:
    import asyncio

    return await asyncio.to_thread(poet.validate, req)


async def text_topic(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text: a poem on that topic in the user's default form."""
    topic = (update.effective_message.text or "").strip()
    _, st = await current_user(update, context)
    limit = context.bot_data["config"].max_text_chars
    if len(topic) > limit:
        await reply(update, context, t(st.lang, "too_long", n=len(topic), limit=limit))
        return
    if len(topic) > MAX_TITLE_CHARS:
        await reply(update, context, t(st.lang, "topic_too_long", n=len(topic), limit=MAX_TITLE_CHARS))
        return
    form = st.default_form
    req = PoemRequest(form=form, title=topic, cipai=default_cipai() if form == "词" else "")
    await write_and_send(update, context, req)


async def poem_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/poem [form] [topic]: with a form, write at once; otherwise offer the form picker."""
    uid, st = await current_user(update, context)
    args = list(context.args or [])
    form = None
    if args:
        try:
            form = parse_form(args[0])
        except RequestError:
            form = None
        if form is not None:
            args = args[1:]
    topic = " ".join(args).strip()
    if len(topic) > MAX_TITLE_CHARS:
        await reply(update, context, t(st.lang, "topic_too_long", n=len(topic), limit=MAX_TITLE_CHARS))
        return
    if form in JINTI:
        await write_and_send(update, context, PoemRequest(form=form, title=topic))
        return
    token = await _remember(context, uid, topic)
    if form == "词":
        await reply(update, context, t(st.lang, "choose_form", topic=_topic_suffix(topic)),
                    reply_markup=cipai_pick_keyboard(token, top_cipai(12)))
        return
    await reply(update, context, t(st.lang, "choose_form", topic=_topic_suffix(topic)),
                reply_markup=form_keyboard(token))


def _topic_suffix(topic: str) -> str:
    from html import escape

    return f"（{escape(topic)}）" if topic else ""


async def _remember(context: ContextTypes.DEFAULT_TYPE, uid: int, topic: str) -> str:
    """Keep the picker's topic (bot_state "pending", the newest MAX_PENDING) under a new token."""
    pending = (await db(context, "get_state", uid, "pending")) or {}
    while len(pending) >= MAX_PENDING:
        pending.pop(next(iter(pending)))
    token = secrets.token_hex(4)
    pending[token] = topic
    await db(context, "put_state", uid, "pending", pending, PENDING_TTL_S)
    return token


async def _pending_topic(context: ContextTypes.DEFAULT_TYPE, uid: int, token: str) -> str | None:
    return ((await db(context, "get_state", uid, "pending")) or {}).get(token)


async def pick_form(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A form from the /poem picker ("pf:<token>:<form>"); 词 asks for a 词牌 next."""
    query = update.callback_query
    _, token, form = (query.data.split(":", 2) + ["", ""])[:3]
    uid, st = await current_user(update, context)
    topic = await _pending_topic(context, uid, token)
    lang = st.lang
    if topic is None or form not in FORMS:
        await query.answer(t(lang, "expired"), show_alert=True)
        return
    await query.answer()
    if form == "词":
        await edit(query, t(lang, "choose_form", topic=_topic_suffix(topic)),
                   reply_markup=cipai_pick_keyboard(token, top_cipai(12)))
        return
    await write_and_send(update, context, PoemRequest(form=form, title=topic))


async def pick_cipai(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A 词牌 from the /poem picker ("pc:<token>:<词牌>")."""
    query = update.callback_query
    _, token, name = (query.data.split(":", 2) + ["", ""])[:3]
    uid, st = await current_user(update, context)
    topic = await _pending_topic(context, uid, token)
    lang = st.lang
    if topic is None or not name:
        await query.answer(t(lang, "expired"), show_alert=True)
        return
    await query.answer()
    await write_and_send(update, context, PoemRequest(form="词", cipai=name, title=topic))


async def acrostic(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/acrostic 春夏秋冬: each line starts with one of the characters."""
    _, st = await current_user(update, context)
    heads = "".join(context.args or [])
    heads = "".join(c for c in heads if not c.isspace() and c not in "，。、,.")
    if not heads:
        await reply(update, context, t(st.lang, "acrostic_usage"))
        return
    if len(heads) > 8:
        await reply(update, context, t(st.lang, "acrostic_too_long"))
        return
    default = st.default_form if st.default_form in JINTI else "七绝"
    form = default[0] + ("绝" if len(heads) <= 4 else "律")  # keep 五/七 from the default form
    await write_and_send(update, context, PoemRequest(form=form, acrostic=heads))


async def ci_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ci 浣溪沙 [topic] writes a 词; /ci alone browses the common 词牌."""
    _, st = await current_user(update, context)
    args = list(context.args or [])
    if not args:
        await _send_browse(update, context, st.lang, 1)
        return
    name, topic = args[0], " ".join(args[1:]).strip()
    if len(topic) > MAX_TITLE_CHARS:
        await reply(update, context, t(st.lang, "topic_too_long", n=len(topic), limit=MAX_TITLE_CHARS))
        return
    await write_and_send(update, context, PoemRequest(form="词", cipai=name, title=topic))


def _browse_page(page: int) -> tuple[list[str], int]:
    names = top_cipai(CIPAI_PAGE * BROWSE_PAGES)
    pages = max(1, math.ceil(len(names) / CIPAI_PAGE))
    page = min(max(1, page), pages)
    return names[(page - 1) * CIPAI_PAGE: page * CIPAI_PAGE], pages


async def _send_browse(update, context, lang: str, page: int) -> None:
    names, pages = _browse_page(page)
    await reply(update, context, t(lang, "ci_browse", page=page, pages=pages),
                reply_markup=cipai_browse_keyboard(names, page, pages))


async def browse_cipai_page(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """◀ ▶ in the 词牌 browser ("cb:<page>")."""
    query = update.callback_query
    raw = query.data.split(":", 1)[1]
    lang = (await current_user(update, context))[1].lang
    if not raw.isdigit() or len(raw) > 3:
        await query.answer(t(lang, "expired"))
        return
    await query.answer()
    names, pages = _browse_page(int(raw))
    page = min(max(1, int(raw)), pages)
    await edit(query, t(lang, "ci_browse", page=page, pages=pages),
               reply_markup=cipai_browse_keyboard(names, page, pages))


async def show_cipai(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A 词牌 from the browser ("cp:<name>"): its most common pattern and a "write one" button."""
    from html import escape

    query = update.callback_query
    name = query.data.split(":", 1)[1]
    _, st = await current_user(update, context)
    try:
        pat = cipai_patterns(name)[0]
    except RequestError:
        await query.answer(t(st.lang, "expired"))
        return
    await query.answer()
    pattern = "\n".join(_wrap_clauses(pat.describe()))
    text = t(st.lang, "ci_pattern", name=escape(pat.name), count=pat.total or pat.count,
             length=pat.text_length, pattern=escape(pattern))
    await send(context, update.effective_chat.id, for_script(text, st.script),
               reply_markup=cipai_write_keyboard(pat.name, st.lang))


def _wrap_clauses(described: str) -> list[str]:
    """"中仄平平仄仄平。韵 中平…" → one line per sentence (ending in 。)."""
    out, cur = [], ""
    for clause in described.split():
        cur += clause
        if "。" in clause or "？" in clause or "！" in clause:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


async def write_cipai(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """"Write one" under a 词牌 ("cw:<name>")."""
    query = update.callback_query
    name = query.data.split(":", 1)[1]
    await query.answer()
    await write_and_send(update, context, PoemRequest(form="词", cipai=name))


async def continue_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/continue 白日依山尽: a poem that starts with the given line."""
    _, st = await current_user(update, context)
    line = "".join(context.args or [])
    line = to_simplified("".join(c for c in line if c not in "，。？！；、,.?!;"))
    if not line:
        await reply(update, context, t(st.lang, "continue_usage"))
        return
    if len(line) not in (5, 7):
        await reply(update, context, t(st.lang, "continue_bad_length", n=len(line)))
        return
    default = st.default_form if st.default_form in JINTI else "七绝"
    form = ("五" if len(line) == 5 else "七") + default[1]  # keep 绝/律 from the default form
    await write_and_send(update, context, PoemRequest(form=form, first_line=line))


async def another(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """"Another" under a poem ("a:<poem id>"): the same request again, with a fresh seed."""
    query = update.callback_query
    found = await own_poem_from_callback(update, context)
    if found is None:
        return
    uid, st, rec = found
    await query.answer()
    req = dataclasses.replace(rec.request, seed=None, n=1)
    msg_id = query.message.message_id if query.message else None
    await write_and_send(update, context, req, reply_to=msg_id)
