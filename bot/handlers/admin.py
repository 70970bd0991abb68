"""Admin-only commands (user ids from SHIREN_ADMIN_IDS; others get "unknown command"):
/stats, /retrain, /model list | promote NAME | rollback."""

from __future__ import annotations

import asyncio
import json
import logging
from html import escape

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers.common import current_user, db, reply, send
from bot.rounds import run_in_background
from bot.texts import t
from bot.workers import WORKER_PREFIX, reload_poet
from db.leases import ROUND_LEASE, ROUND_LEASE_S
from db.store import NotFoundError

log = logging.getLogger("bot.admin")


def _pre(data) -> str:
    return "<pre>" + escape(json.dumps(data, ensure_ascii=False, indent=1, default=str)) + "</pre>"


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Users, poems, ratings, the active adapter and its metrics, the running model, load."""
    s = await db(context, "stats")
    active = await db(context, "active_adapter")
    cap = context.bot_data["cap"]
    s["active_adapter_metrics"] = active.metrics if active is not None else None
    s["model_version"] = getattr(context.bot_data["poet"], "version", "?")
    c = getattr(context.bot_data["poet"], "contrast", None)  # contrastive decoding (core.contrast), or plain
    s["contrast"] = {"beta": c.beta, "alpha": c.alpha} if c is not None else None
    s["generations_in_flight"] = cap.in_flight  # this worker's
    s["generations_peak"] = cap.peak
    s["worker"] = context.bot_data.get("worker")
    s["feedback_leader"] = bool(context.bot_data.get("leader"))
    s["workers_live"] = len(await db(context, "leases", WORKER_PREFIX))
    s["generations_in_flight_all_workers"] = len(await db(context, "leases", cap.SLOT_PREFIX))
    await reply(update, context, "<b>Shiren stats</b>\n" + _pre(s))


async def retrain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Start a feedback-training round in the background; report its result when it finishes."""
    _, st = await current_user(update, context)
    fn = context.bot_data.get("retrain")
    if fn is None:
        await reply(update, context, t(st.lang, "retrain_off"))
        return
    me = context.bot_data["worker"]
    if context.bot_data.get("retrain_running") or not await db(context, "acquire_lease", ROUND_LEASE, me,
                                                                ROUND_LEASE_S):
        await reply(update, context, t(st.lang, "retrain_running"))  # here, or on another worker
        return
    context.bot_data["retrain_running"] = True
    chat_id = update.effective_chat.id

    async def run() -> None:
        try:
            result = await asyncio.to_thread(run_in_background, fn)
            if isinstance(result, dict) and result.get("outcome") == "promoted":
                await _reload(context)  # serve the newly promoted adapter from now on
            await send(context, chat_id, t(st.lang, "retrain_done", result=escape(
                json.dumps(result, ensure_ascii=False, indent=1, default=str))))
        except Exception as e:  # noqa: BLE001 — report, log, keep the bot running
            log.exception("feedback training failed")
            await send(context, chat_id, t(st.lang, "retrain_failed", error=escape(str(e)[:300])))
        finally:
            try:  # release before clearing the flag: "not running here" then means the lease is free too
                await db(context, "release_lease", ROUND_LEASE, me)
            finally:
                context.bot_data["retrain_running"] = False

    context.application.create_task(run(), update=update, name="retrain")
    await reply(update, context, t(st.lang, "retrain_started"))


async def model(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/model list | promote NAME | rollback — the adapter versions in the Store."""
    _, st = await current_user(update, context)
    args = list(context.args or [])
    sub = args[0].lower() if args else "list"
    if sub == "list" and len(args) <= 1:
        adapters = await db(context, "list_adapters")
        if not adapters:
            await reply(update, context, t(st.lang, "model_none"))
            return
        lines = [f"{'▶' if a.status == 'active' else ' '} {a.name} · {a.status} · parent {a.parent or '-'} · "
                 f"{a.created:%Y-%m-%d} · {json.dumps(a.metrics, ensure_ascii=False, default=str)}"
                 for a in adapters]
        await reply(update, context, "<pre>" + escape("\n".join(lines))[:3900] + "</pre>")
    elif sub == "promote" and len(args) == 2:
        try:
            await db(context, "promote", args[1])
        except NotFoundError as e:
            await reply(update, context, t(st.lang, "bad_request", message=escape(str(e))))
            return
        await _reload(context)
        await reply(update, context, t(st.lang, "model_promoted", name=escape(args[1])))
    elif sub == "rollback" and len(args) == 1:
        back = await db(context, "rollback")
        if back is None:
            await reply(update, context, t(st.lang, "model_no_rollback"))
            return
        await _reload(context)
        await reply(update, context, t(st.lang, "model_rolled_back", name=escape(back.name)))
    else:
        await reply(update, context, t(st.lang, "model_usage"))


async def _reload(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Load the now-active adapter here at once (the other workers see it at their next poll)."""
    await reload_poet(context.bot_data)
