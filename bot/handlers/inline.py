"""Inline mode: "@bot 春夜" in any chat offers a few poems on that topic, as text and as picture
cards; choosing one posts it there. Also "@bot 七律 秋兴", "@bot 藏头 春夏秋冬", "@bot 浣溪沙 春游".

Telegram sends a query per keystroke: a query waits a moment and is dropped when a newer one from
the same user arrived meanwhile. Poems go through the shared batcher under the bot's usual limits
(rate limit, generation cap, text length), are stored like any other (the ⭐ link under each opens
the private chat on it, to rate it there), and the answers are cached per user and query for a
short time in the database, so on every worker (and by Telegram for `cache_time`, personal to the user). Card results need
SHIREN_BOT_CARD_CHAT: inline results can only show photos Telegram already has, so the cards are
uploaded there first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time

from telegram import (
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    InputTextMessageContent,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, known_lang, services
from bot.keyboards import rate_link_keyboard
from bot.limits import CapacityError
from bot.render import caption, poem_heading, render_poem
from bot.texts import t
from core.card import FontMissingError
from core.forms import parse_form
from core.gelv import cipai_patterns, top_cipai
from core.types import MAX_TITLE_CHARS, BusyError, PoemRequest, RequestError, ShirenError

log = logging.getLogger("bot.inline")

INLINE_POEMS = 3  # poems offered per query
DEBOUNCE_S = 0.6  # wait this long for the user to stop typing
DEADLINE_S = 8.0  # Telegram drops answers after about 10 s
CACHE_TTL_S = 120.0  # our own cache of answered queries
CACHE_TIME_S = 30  # Telegram's cache of our answer (cache_time), personal to the user
CACHE_PER_USER = 8  # cached answers per user
INLINE_SEQ_TTL_S = 600.0
ACROSTIC_WORDS = ("藏头", "藏頭", "acrostic")
JINTI = ("五绝", "七绝", "五律", "七律")


def parse_inline_query(text: str, default_form: str = "七绝") -> PoemRequest:
    """"春夜" → a poem on 春夜 in the default form; "七律 秋兴" → a 七律; "藏头 春夏秋冬" → an acrostic;
    "浣溪沙 春游" or "词 春游" → a 词. RequestError says what is wrong."""
    text = " ".join(text.split())
    if not text:
        raise RequestError("type a topic")
    head, _, rest = text.partition(" ")
    if head in ACROSTIC_WORDS:
        heads = "".join(c for c in rest if not c.isspace() and c not in "，。、,.")
        if not heads:
            raise RequestError("藏头 needs its characters, e.g. 藏头 春夏秋冬")
        if len(heads) > 8:
            raise RequestError("an acrostic has at most 8 characters (a 律诗 has 8 lines)")
        base = default_form if default_form in JINTI else "七绝"
        return PoemRequest(form=base[0] + ("绝" if len(heads) <= 4 else "律"), acrostic=heads)
    form = cipai = None
    try:
        form = parse_form(head) if rest or len(head) <= 4 else None
    except RequestError:
        try:
            pattern = cipai_patterns(head)[0]
            cipai = pattern.name if rest or pattern.name == head else None  # alone, only the exact name
        except RequestError:
            cipai = None
    if form is None and cipai is None:
        form, rest = default_form, text
    elif cipai is not None:
        form = "词"
    if len(rest) > MAX_TITLE_CHARS:
        raise RequestError(f"the topic is too long ({len(rest)} chars; at most {MAX_TITLE_CHARS})")
    if form == "词" and cipai is None:
        cipai = top_cipai(1)[0]
    return PoemRequest(form=form, title=rest, cipai=cipai or "")


async def _cached(context, uid: int, key: str, lang: str, script: str) -> list | None:
    """The results of the same query answered within CACHE_TTL_S, on any worker (bot_state
    "inline_cache": poem ids and card file ids, rebuilt from the stored poems)."""
    entry = ((await db(context, "get_state", uid, "inline_cache")) or {}).get(key)
    if entry is None or entry["exp"] < time.time():
        return None
    recs = [await db(context, "get_poem", pid) for pid in entry["ids"]]
    if any(r is None or r.user_id != uid for r in recs):
        return None  # deleted meanwhile
    files = {int(k): v for k, v in entry["files"].items()}
    return _results(recs, entry["ids"], files, context.bot.username, lang, script)


async def _remember(context, uid: int, key: str, ids: list[int], file_ids: dict[int, str]) -> None:
    """Keep this answer for CACHE_TTL_S (the user's newest CACHE_PER_USER queries)."""
    now = time.time()
    cache = {k: v for k, v in ((await db(context, "get_state", uid, "inline_cache")) or {}).items()
             if v["exp"] >= now}
    cache[key] = {"exp": now + CACHE_TTL_S, "ids": list(ids), "files": {str(k): v for k, v in file_ids.items()}}
    while len(cache) > CACHE_PER_USER:
        cache.pop(min(cache, key=lambda k: cache[k]["exp"]))
    await db(context, "put_state", uid, "inline_cache", cache, CACHE_TTL_S)


async def _answer(update: Update, results: list, button_text: str | None = None, cache_time: int = CACHE_TIME_S) -> None:
    button = InlineQueryResultsButton(text=button_text[:64], start_parameter="inline") if button_text else None
    try:
        await update.inline_query.answer(results, cache_time=cache_time, is_personal=True, button=button)
    except BadRequest as e:  # too late (the user typed on, or the poet was slow): nothing to do
        log.info("inline answer not delivered: %s", e)


async def _upload_cards(context, poems, ids, script: str, deadline: float) -> dict[int, str]:
    """Upload each poem's card to the card chat; {poem id: photo file id} for those that made it."""
    chat = context.bot_data["config"].card_chat
    if chat is None:
        return {}
    from bot.handlers.card import card_png

    async def one(poem, pid):
        png = await card_png(poem.text, poem.form, poem.title, poem.cipai, script)
        msg = await context.bot.send_photo(chat, png, caption=f"#{pid}")
        return pid, msg.photo[-1].file_id

    try:
        done = await asyncio.wait_for(asyncio.gather(*(one(p, i) for p, i in zip(poems, ids, strict=True)),
                                                     return_exceptions=True),
                                      max(0.5, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("inline cards took too long; answering with text only")
        return {}
    out = {}
    for r in done:
        if isinstance(r, FontMissingError):
            log.warning("no inline cards: %s", r)
        elif isinstance(r, TelegramError | OSError):
            log.warning("uploading an inline card failed: %s", r)
        elif isinstance(r, BaseException):
            raise r
        else:
            out[r[0]] = r[1]
    return out


def _results(poems, ids, file_ids: dict[int, str], bot_username: str, lang: str, script: str) -> list:
    from html import unescape

    from bot.render import for_script

    texts, cards = [], []
    for poem, pid in zip(poems, ids, strict=True):
        html = render_poem(poem.text, poem.form, title=poem.title, cipai=poem.cipai, scores=poem.scores,
                           model_version=poem.model_version, lang=lang, script=script)
        heading = for_script(unescape(poem_heading(poem.form, poem.title, poem.cipai).replace("<b>", "")
                                      .replace("</b>", "")), script)
        first = for_script(next((ln for ln in poem.text.split("\n") if ln.strip()), ""), script)
        keyboard = rate_link_keyboard(bot_username, pid, lang)
        texts.append(InlineQueryResultArticle(
            id=f"t{pid}", title=t(lang, "inline_text_title", heading=heading), description=first,
            input_message_content=InputTextMessageContent(html, parse_mode=ParseMode.HTML,
                                                          link_preview_options=LinkPreviewOptions(is_disabled=True)),
            reply_markup=keyboard))
        if pid in file_ids:
            cards.append(InlineQueryResultCachedPhoto(
                id=f"c{pid}", photo_file_id=file_ids[pid], title=t(lang, "inline_card_title", heading=heading),
                description=first, caption=caption(html), parse_mode=ParseMode.HTML, reply_markup=keyboard))
    return texts + cards


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """"@bot <topic>" typed in any chat: a few poems on it, as text and card results."""
    started = time.monotonic()
    query = update.inline_query
    text = " ".join((query.query or "").split())
    # Telegram numbers updates in order: the newest query of a user has the largest update id, on
    # whichever worker it lands (bot_state "inline_seq" keeps the largest).
    seq = update.update_id
    if not text:  # "@bot " alone: a hint, and no user row for someone who only looked
        await _answer(update, [], t(await known_lang(update, context), "inline_hint"))
        return
    uid, st = await current_user(update, context)
    await db(context, "raise_state", uid, "inline_seq", seq, INLINE_SEQ_TTL_S)
    key = "\x1f".join((text, st.script, st.lang, st.default_form))
    cached = await _cached(context, uid, key, st.lang, st.script)
    if cached is not None:
        await _answer(update, cached)
        return
    await asyncio.sleep(max(0.0, started + DEBOUNCE_S - time.monotonic()))
    if ((await db(context, "get_state", uid, "inline_seq")) or {}).get("n", seq) != seq:
        return  # the user typed on: a newer query is being answered
    svc = services(context)
    if len(text) > svc.config.max_text_chars:
        await _answer(update, [], t(st.lang, "too_long", n=len(text), limit=svc.config.max_text_chars), 0)
        return
    try:
        req = parse_inline_query(text, st.default_form)
        req = await asyncio.to_thread(svc.poet.validate, dataclasses.replace(req, n=INLINE_POEMS))
    except RequestError as e:
        await _answer(update, [], f"⚠️ {e}", 0)
        return
    wait = await svc.limiter.acquire(uid)
    if wait:
        await _answer(update, [], t(st.lang, "inline_slow", seconds=max(1, math.ceil(wait))), 0)
        return
    deadline = started + DEADLINE_S
    try:
        async with svc.cap.slot():
            poems = await svc.poet.awrite(req, timeout=max(1.0, deadline - time.monotonic()))
        ids = await db(context, "record_poems", uid, req, poems, context.bot_data.get("adapter_version"))
    except (CapacityError, BusyError):
        await svc.limiter.refund(uid)
        await _answer(update, [], t(st.lang, "inline_busy"), 0)
        return
    except ShirenError as e:
        await svc.limiter.refund(uid)
        await _answer(update, [], f"⚠️ {e}", 0)
        return
    file_ids = await _upload_cards(context, poems, ids, st.script, deadline)
    results = _results(poems, ids, file_ids, context.bot.username, st.lang, st.script)
    await _remember(context, uid, key, ids, file_ids)
    await _answer(update, results)
