"""Several bot workers on one database: heartbeats, the feedback leader, the request journal, and
the adapter poll (docs/scale.md).

Every worker runs `tick` every `config.heartbeat_s`:

1. renews its heartbeat lease "worker:<id>" (it lives 3 ticks: a worker that stops ticking is dead);
2. tries for the lease "feedback-leader" (held by one worker at a time, renewed by it each tick; when
   its holder dies the lease expires and the next worker to tick takes it). Only the leader runs the
   scheduled feedback rounds;
3. as leader, answers the requests a dead worker left unanswered (the journal, below);
4. every `config.adapter_poll_s`, reads the active adapter's name and reloads the poet when it changed
   (a round promoted on the leader, or /model on any worker, reaches every worker this way).

The request journal: a generation (a poem, a revision) holds the lease "req:<update id>" while it is
answered — {"chat", "lang", "state": running → stored (with the poem id) → done}. A second delivery of
the same update finds the row and is dropped (nothing is written twice). When a worker dies mid-request,
its rows stay "running"/"stored" under a holder whose heartbeat has expired: the leader then sends the
stored poem, or (nothing stored) a message asking to send the request again, and marks the row done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

from telegram.constants import ParseMode
from telegram.error import TelegramError

log = logging.getLogger("bot.workers")

LEADER = "feedback-leader"
WORKER_PREFIX = "worker:"
JOURNAL_PREFIX = "req:"
JOURNAL_KEEP_S = 3600.0  # a journal row outlives any redelivery of its update


def new_worker_id() -> str:
    """host:pid:random — unique per Application, even for two in one process (the tests)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _ttl(bot_data: dict) -> float:
    return 3.0 * bot_data["config"].heartbeat_s


async def _db(bot_data: dict, method: str, *args, **kwargs):
    return await asyncio.to_thread(getattr(bot_data["store"], method), *args, **kwargs)


async def tick(app: Any) -> None:
    """One heartbeat: renew, contend for leadership, reap a dead worker's requests, poll the adapter."""
    d = app.bot_data
    me = d["worker"]
    await _db(d, "acquire_lease", WORKER_PREFIX + me, me, _ttl(d))
    leader = await _db(d, "acquire_lease", LEADER, me, _ttl(d))
    if leader != d.get("leader"):
        log.info("worker %s %s the feedback leader", me, "is now" if leader else "is no longer")
    d["leader"] = leader
    if leader:
        await reap(app)
    now = time.monotonic()
    if now >= d.get("adapter_poll_at", 0.0):
        d["adapter_poll_at"] = now + d["config"].adapter_poll_s
        await poll_adapter(d)


async def run_ticks(app: Any) -> None:
    """`tick` forever, every heartbeat_s; a failed tick (the database away) is logged and retried."""
    while True:
        try:
            await tick(app)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — the next tick tries again
            log.warning("worker tick failed", exc_info=True)
        await asyncio.sleep(app.bot_data["config"].heartbeat_s)


async def stop_ticks(app: Any, *, release: bool = True) -> None:
    """Stop ticking; on a clean shutdown hand leadership and the heartbeat back at once."""
    d = app.bot_data
    task = d.pop("ticker", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if release and d.get("store") is not None:
        me = d["worker"]
        with contextlib.suppress(Exception):
            await _db(d, "release_lease", LEADER, me)
            await _db(d, "release_lease", WORKER_PREFIX + me, me)


async def poll_adapter(bot_data: dict) -> bool:
    """Reload the poet when the active adapter changed (on any worker); True when it did."""
    active = await _db(bot_data, "active_adapter")
    name = active.name if active is not None else None
    if name == bot_data.get("adapter_version"):
        return False
    log.info("active adapter %s → %s: reloading", bot_data.get("adapter_version"), name)
    await reload_poet(bot_data)
    return True


async def reload_poet(bot_data: dict) -> None:
    """Run the optional bot_data["reload"] hook (sync; it may return a freshly loaded poet, swapped in)
    and record the active adapter's name for the poems written from now on."""
    fn = bot_data.get("reload")
    if fn is not None:
        new = await asyncio.to_thread(fn)
        if new is not None:
            old, bot_data["poet"] = bot_data.get("poet"), new
            if old is not None and hasattr(old, "close"):
                old.close()
    if bot_data.get("store") is not None:
        active = await _db(bot_data, "active_adapter")
        bot_data["adapter_version"] = active.name if active is not None else None


# ---- the request journal ------------------------------------------------------------------------


class Journal:
    """One request's journal row (see the module docstring); `None` from `open` means a duplicate."""

    def __init__(self, bot_data: dict, name: str, value: dict) -> None:
        self.bot_data, self.name, self.value = bot_data, name, value

    @classmethod
    async def open(cls, bot_data: dict, update_id: int, chat_id: int, lang: str) -> Journal | None:
        name, value = f"{JOURNAL_PREFIX}{update_id}", {"chat": chat_id, "lang": lang, "state": "running"}
        me = bot_data["worker"]
        existing = await _db(bot_data, "leases", name)
        if any(x.name == name for x in existing):  # delivered before (to this worker or another): answered, or being answered
            return None
        if not await _db(bot_data, "acquire_lease", name, me, JOURNAL_KEEP_S, value):
            return None
        return cls(bot_data, name, value)

    @classmethod
    async def run(cls, update: Any, context: Any, lang: str, fn, *args):
        """`await fn(journal, *args)` under a journal row for this update; None without running it when
        the update was delivered before. Not marked done when cancelled (the worker is going away:
        the leader answers for it)."""
        journal = await cls.open(context.bot_data, update.update_id, update.effective_chat.id, lang)
        if journal is None:
            log.info("update %s delivered again: already answered or being answered", update.update_id)
            return None
        try:
            result = await fn(journal, *args)
        except asyncio.CancelledError:
            raise
        except BaseException:
            await asyncio.shield(journal.mark("done"))
            raise
        await asyncio.shield(journal.mark("done"))
        return result

    async def mark(self, state: str, **extra: Any) -> None:
        self.value = {**self.value, "state": state, **extra}
        await _db(self.bot_data, "set_lease_value", self.name, self.value)


async def reap(app: Any) -> int:
    """Answer the requests whose worker died before answering; returns how many."""
    from bot.keyboards import poem_keyboard
    from bot.render import render_record
    from bot.texts import t

    d = app.bot_data
    await _db(d, "purge_leases", JOURNAL_PREFIX)
    await _db(d, "purge_leases", WORKER_PREFIX)
    live = {x.holder for x in await _db(d, "leases", WORKER_PREFIX)}
    done = 0
    for j in await _db(d, "leases", JOURNAL_PREFIX):
        state = j.value.get("state")
        if state not in ("running", "stored") or j.holder in live:
            continue
        await _db(d, "set_lease_value", j.name, {**j.value, "state": "reaped"})
        chat, lang = j.value.get("chat"), j.value.get("lang", "zh")
        rec = await _db(d, "get_poem", j.value["poem"]) if state == "stored" else None
        try:
            if rec is not None:  # stored but not sent: send it now
                await app.bot.send_message(chat, render_record(rec, lang=lang), parse_mode=ParseMode.HTML,
                                           reply_markup=poem_keyboard(rec.id, rec.rating, lang))
            else:
                await app.bot.send_message(chat, t(lang, "interrupted"), parse_mode=ParseMode.HTML)
        except TelegramError as e:
            log.warning("could not answer %s for the dead worker %s: %s", j.name, j.holder, e)
        log.info("answered %s (%s) for the dead worker %s", j.name, state, j.holder)
        done += 1
    return done
