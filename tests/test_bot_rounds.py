"""bot.rounds: scheduled feedback rounds in the bot's JobQueue, wired by the CLI (no training import)."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import bot.rounds as rounds


class Leases:
    """The two Store methods a round needs, with one lease table shared by 'workers'."""

    def __init__(self):
        self.held: dict[str, str] = {}

    def acquire_lease(self, name, holder, ttl_s):
        if self.held.get(name, holder) != holder:
            return False
        self.held[name] = holder
        return True

    def release_lease(self, name, holder):
        if self.held.get(name) == holder:
            del self.held[name]


def _context(store, **data):
    return SimpleNamespace(application=SimpleNamespace(bot_data={"store": store, "worker": "w1",
                                                                 "retrain_running": False, **data}))


def test_schedule_rounds_registers_a_repeating_job():
    jobs = []
    queue = SimpleNamespace(run_repeating=lambda cb, **kw: jobs.append((cb, kw)) or "job")
    assert rounds.schedule_rounds(queue, 12) == "job"
    cb, kw = jobs[0]
    assert cb is rounds.scheduled_round
    assert kw["interval"] == 12 * 3600 and kw["name"] == "feedback-round" and kw["first"] == 600.0


def test_a_scheduled_round_runs_only_on_the_leader_when_no_other_round_runs():
    store, calls, reloads = Leases(), [], []

    def round_fn():
        calls.append(1)
        assert store.held == {rounds.ROUND_LEASE: "w1"}  # the lease is held while the round runs
        return {"outcome": "promoted", "message": "ok"}

    ctx = _context(store, scheduled_round=round_fn, reload=lambda: reloads.append(1))
    d = ctx.application.bot_data
    asyncio.run(rounds.scheduled_round(ctx))
    assert calls == [1] and reloads == [1]  # promoted: the poet is reloaded here at once
    assert d["retrain_running"] is False and store.held == {}  # the lease is given back

    d["retrain_running"] = True  # /retrain is running here: wait for next time
    asyncio.run(rounds.scheduled_round(ctx))
    d.update(retrain_running=False, leader=False)  # another worker leads
    asyncio.run(rounds.scheduled_round(ctx))
    d["leader"] = True
    store.held[rounds.ROUND_LEASE] = "w2"  # a round runs on another worker
    asyncio.run(rounds.scheduled_round(ctx))
    assert calls == [1]
    del store.held[rounds.ROUND_LEASE]
    asyncio.run(rounds.scheduled_round(ctx))
    assert calls == [1, 1]


def test_a_failing_round_is_logged_and_releases_everything(caplog):
    store = Leases()

    def boom():
        raise RuntimeError("disk full")

    ctx = _context(store, scheduled_round=boom)
    asyncio.run(rounds.scheduled_round(ctx))
    assert "scheduled feedback round failed" in caplog.text
    assert ctx.application.bot_data["retrain_running"] is False and store.held == {}


def test_no_round_wired_means_nothing_runs():
    store = Leases()
    asyncio.run(rounds.scheduled_round(_context(store)))
    assert store.held == {}


def test_serving_code_never_imports_training_code():
    """bot/, core/ and tui/ stay importable without the training package: the CLI wires it in."""
    import subprocess

    code = ("import sys, importlib, pkgutil\n"
            "import bot.app, bot.handlers.admin, bot.rounds, bot.workers, core.poet, tui.app\n"
            "bad = sorted(m for m in sys.modules if m == 'training' or m.startswith('training.'))\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
