"""Scheduled feedback rounds inside the bot: every few hours the leading worker (bot.workers) runs the
round the CLI handed in (`bot_data["scheduled_round"]`, a sync `() -> dict`), in a worker thread, never
on the event loop. The bot does not import the training code: bot/cli.py wires it from the top.

A round is skipped while /retrain runs here, while another worker holds the round lease, or when this
worker is not the leader; a promotion reloads the poet here at once (the other workers see it at their
next adapter poll)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.workers import reload_poet
from core.cpu_share import background_thread
from db.leases import ROUND_LEASE, ROUND_LEASE_S

log = logging.getLogger("bot.rounds")

JOB_NAME = "feedback-round"


def run_in_background(fn: Callable[[], Any]) -> Any:
    """Run a round in this (worker) thread with its CPU counted as another process's (core.cpu_share):
    poem requests meanwhile decode on the cores the round leaves free instead of waiting on its core."""
    with background_thread():
        return fn()


async def scheduled_round(context: Any) -> None:
    """One scheduled feedback round, when this worker should run it."""
    d = context.application.bot_data
    fn = d.get("scheduled_round")
    if fn is None:
        return
    if d.get("leader") is False:
        log.debug("scheduled feedback round: not the leader")
        return
    if d.get("retrain_running"):
        log.info("scheduled feedback round skipped: /retrain is running")
        return
    me, store = d.get("worker", "bot"), d["store"]
    if not await asyncio.to_thread(store.acquire_lease, ROUND_LEASE, me, ROUND_LEASE_S):
        log.info("scheduled feedback round skipped: a round runs on another worker")
        return
    d["retrain_running"] = True
    try:
        result = await asyncio.to_thread(run_in_background, fn)
        outcome = result.get("outcome") if isinstance(result, dict) else None
        log.info("scheduled feedback round: %s — %s", outcome, (result or {}).get("message", ""))
        if outcome == "promoted":
            await reload_poet(d)
    except Exception:  # noqa: BLE001 — a scheduled job must never take the bot down
        log.exception("scheduled feedback round failed")
    finally:
        try:  # release before clearing the flag: "not running here" then means the lease is free too
            await asyncio.to_thread(store.release_lease, ROUND_LEASE, me)
        finally:
            d["retrain_running"] = False


def schedule_rounds(job_queue: Any, every_hours: float, first_seconds: float = 600.0) -> Any:
    """Run `scheduled_round` every `every_hours` in PTB's JobQueue."""
    return job_queue.run_repeating(scheduled_round, interval=every_hours * 3600.0, first=first_seconds,
                                   name=JOB_NAME)
