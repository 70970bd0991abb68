"""/history [search]: the user's own poems with their ratings, paged."""

from __future__ import annotations

import math

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import command_text, current_user, db, edit, reply
from bot.keyboards import history_keyboard
from bot.render import render_history
from bot.texts import t
from core.script import to_simplified

HISTORY_TTL_S = 7 * 86400.0  # the /history search the ◀ ▶ buttons page through (bot_state "history")


async def _page(update: Update, context: ContextTypes.DEFAULT_TYPE, page: int) -> tuple[str, object]:
    uid, st = await current_user(update, context)
    search = ((await db(context, "get_state", uid, "history")) or {}).get("search", "")
    size = context.bot_data["config"].history_page_size
    total = await db(context, "count_history", uid, search)
    pages = max(1, math.ceil(total / size))
    page = min(max(1, page), pages)
    records = await db(context, "history", uid, limit=size, offset=(page - 1) * size, search=search)
    html = render_history(records, total=total, page=page, pages=pages, search=search,
                          lang=st.lang, script=st.script)
    return html, history_keyboard(page, pages)


async def history(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The first page of the user's poems (optionally only those matching a search)."""
    uid, _ = await current_user(update, context)
    search = to_simplified(command_text(update))[:30]
    await db(context, "put_state", uid, "history", {"search": search}, HISTORY_TTL_S)
    html, kb = await _page(update, context, 1)
    await reply(update, context, html, reply_markup=kb)


async def history_page(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """◀ ▶ in /history ("h:<page>"): always the clicking user's own poems."""
    query = update.callback_query
    raw = query.data.split(":", 1)[1]
    if not raw.isdigit() or len(raw) > 6:
        _, st = await current_user(update, context)
        await query.answer(t(st.lang, "expired"))
        return
    await query.answer()
    html, kb = await _page(update, context, int(raw))
    await edit(query, html, reply_markup=kb)
