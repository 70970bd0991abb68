"""End to end: the admin commands (/stats, /retrain, /model) and their gating."""

from __future__ import annotations

import threading
import time

import pytest
from fake_telegram import RunningBot

ADMIN = 1
_release = threading.Event()


def _retrain() -> dict:
    """A stand-in feedback round (the real one lives in training/): waits, then reports."""
    _release.wait(10)
    return {"outcome": "promoted", "adapter": "fb-002", "ratings": 3}


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    with RunningBot(tmp_path_factory.mktemp("bot_admin"), admin_ids=frozenset({ADMIN}), retrain=_retrain) as rb:
        yield rb


@pytest.mark.parametrize("cmd", ["/stats", "/retrain", "/model list", "/model rollback"])
def test_admin_commands_are_hidden_from_others(rb, cmd):
    r = rb.fake.ask(401, cmd)
    assert "未知命令" in r.text


def test_stats(rb):
    rb.poem(402, "松")
    r = rb.fake.ask(ADMIN, "/stats")
    for key in ("users", "poems", "ratings", "active_adapter", "model_version", "tiny-0", '"contrast": null'):
        assert key in r.text
    assert '"workers_live": 1' in r.text and '"feedback_leader": true' in r.text  # one worker: it leads


def test_retrain_runs_in_the_background_and_reports(rb, monkeypatch):
    fake = rb.fake
    mark = fake.mark()
    release = rb.store.release_lease

    def slow_release(*a, **kw):  # a slow database: the flag must not clear before the lease is free
        time.sleep(0.3)
        return release(*a, **kw)

    monkeypatch.setattr(rb.store, "release_lease", slow_release)
    r = fake.ask(ADMIN, "/retrain")
    assert "后台" in r.text
    assert "进行中" in fake.ask(ADMIN, "/retrain").text  # one round at a time
    assert "命令" in fake.ask(ADMIN, "/help").text  # the bot keeps answering meanwhile
    _release.set()
    done = fake.wait("sendMessage", chat_id=ADMIN, since=mark, where=lambda c: "✅" in c.text)[0]
    assert "fb-002" in done.text and "promoted" in done.text
    deadline = time.monotonic() + 10
    while rb.bot_data.get("retrain_running") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not rb.bot_data.get("retrain_running")
    assert not rb.store.leases("feedback-round")  # flag clear ⇒ lease free


def test_retrain_waits_for_a_round_on_another_worker(rb):
    """A round holding the "feedback-round" lease elsewhere (another bot worker): /retrain says so."""
    deadline = time.monotonic() + 10
    while rb.bot_data.get("retrain_running") and time.monotonic() < deadline:
        time.sleep(0.05)  # the previous test's round has finished
    assert rb.store.acquire_lease("feedback-round", "another-worker", 60)
    try:
        assert "进行中" in rb.fake.ask(ADMIN, "/retrain").text
    finally:
        rb.store.release_lease("feedback-round")


def test_retrain_not_configured(tmp_path):
    with RunningBot(tmp_path, admin_ids=frozenset({ADMIN})) as rb2:
        assert "未配置" in rb2.fake.ask(ADMIN, "/retrain").text


def test_model_list_promote_rollback(rb):
    fake = rb.fake
    assert "还没有" in fake.ask(ADMIN, "/model list").text
    rb.store.add_adapter("sft-001", "/nonexistent/sft-001", None, {"val_loss": 2.5}, status="active")
    rb.store.add_adapter("fb-001", "/nonexistent/fb-001", "sft-001", {"val_loss": 2.4})
    r = fake.ask(ADMIN, "/model")
    assert "sft-001" in r.text and "fb-001" in r.text and "active" in r.text and "val_loss" in r.text
    assert "fb-001" in fake.ask(ADMIN, "/model promote fb-001").text
    assert rb.store.active_adapter().name == "fb-001"
    assert "fb-001" in fake.ask(ADMIN, "/stats").text
    assert "sft-001" in fake.ask(ADMIN, "/model rollback").text
    assert rb.store.active_adapter().name == "sft-001"
    assert "没有可回滚" in fake.ask(ADMIN, "/model rollback").text
    assert "⚠️" in fake.ask(ADMIN, "/model promote nope").text
    assert "用法" in fake.ask(ADMIN, "/model frob").text
