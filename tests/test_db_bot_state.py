"""The bot's shared state in the Store (bot_state, bot_leases): what lets several bot workers share
one database. Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from db_fixtures import *  # noqa: F403

from db.store import Store


def test_state_put_get_pop_expire_and_forget(store):
    uid = store.ensure_user("telegram", "1")
    assert store.get_state(uid, "pending") is None
    store.put_state(uid, "pending", {"ab12": "秋思"}, ttl_s=60)
    store.put_state(uid, "pending", {"ab12": "秋思", "cd34": ""}, ttl_s=60)  # replaces
    assert store.get_state(uid, "pending") == {"ab12": "秋思", "cd34": ""}
    assert store.pop_state(uid, "pending") == {"ab12": "秋思", "cd34": ""}
    assert store.pop_state(uid, "pending") is None  # once only
    store.put_state(uid, "forget", {"nonce": "x"}, ttl_s=0.05)
    time.sleep(0.1)
    assert store.get_state(uid, "forget") is None and store.pop_state(uid, "forget") is None
    store.put_state(uid, "history", {"search": "春"})
    store.forget_user(uid)
    uid = store.ensure_user("telegram", "1")
    assert store.get_state(uid, "history") is None


def test_claim_state_is_a_mutex_until_released_or_expired(store):
    uid = store.ensure_user("telegram", "2")
    assert store.claim_state(uid, "card_busy", 60)
    assert not store.claim_state(uid, "card_busy", 60)
    store.pop_state(uid, "card_busy")
    assert store.claim_state(uid, "card_busy", 0.05)
    time.sleep(0.1)
    assert store.claim_state(uid, "card_busy", 60)  # the expired claim is taken over


def test_raise_state_keeps_the_largest(store):
    uid = store.ensure_user("telegram", "3")
    assert store.raise_state(uid, "inline_seq", 5) == 5
    assert store.raise_state(uid, "inline_seq", 3) == 5
    assert store.raise_state(uid, "inline_seq", 9) == 9


def test_token_bucket_burst_refill_refund(store):
    uid = store.ensure_user("telegram", "4")
    assert [store.take_token(uid, 3, 60.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = store.take_token(uid, 3, 60.0)
    assert 0.0 < wait <= 1.0
    store.refund_token(uid, 3)
    assert store.take_token(uid, 3, 60.0) == 0.0
    time.sleep(1.1)  # 60/min: one token a second
    assert store.take_token(uid, 3, 60.0) == 0.0


def test_token_bucket_is_exact_across_two_stores(db_url):
    """Two workers (two Stores, two engines) taking tokens at once: exactly `burst` succeed."""
    a, b = Store(db_url), Store(db_url)
    try:
        uid = a.ensure_user("telegram", "5")
        results: list[float] = []
        lock = threading.Lock()

        def take(store):
            for _ in range(5):
                w = store.take_token(uid, 4, 0.001)
                with lock:
                    results.append(w)

        threads = [threading.Thread(target=take, args=(s,)) for s in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 20 and results.count(0.0) == 4
    finally:
        a.close()
        b.close()


def test_leases_take_renew_expire_release(store):
    assert store.acquire_lease("feedback-leader", "w1", 30)
    assert store.acquire_lease("feedback-leader", "w1", 30)  # renewal
    assert not store.acquire_lease("feedback-leader", "w2", 30)
    assert [x.holder for x in store.leases("feedback-")] == ["w1"]
    assert not store.release_lease("feedback-leader", "w2")
    assert store.release_lease("feedback-leader", "w1")
    assert store.acquire_lease("feedback-leader", "w2", 0.05)
    time.sleep(0.1)
    assert store.leases("feedback-") == []
    assert store.acquire_lease("feedback-leader", "w1", 30)  # w2 died: w1 takes over


def test_slots_cap_generations_across_two_stores(db_url, monkeypatch):
    """The global cap: with limit 3, never more than 3 slots live, whichever store asks."""
    import db.store

    clock = [db.store.utcnow()]  # the store's clock, moved by the test: a slow machine cannot expire a lease
    monkeypatch.setattr(db.store, "utcnow", lambda: clock[0])
    a, b = Store(db_url), Store(db_url)
    try:
        got = [s.acquire_slot("gen:", name, 3, 60) for s, name in ((a, "a"), (b, "b"), (a, "a"), (b, "b"))]
        assert sum(x is not None for x in got) == 3 and got[3] is None
        assert len(a.leases("gen:")) == 3
        a.release_lease(got[0])
        assert b.acquire_slot("gen:", "b", 3, 60) is not None
        short = [a.acquire_slot("exp:", "a", 1, 0.05), a.acquire_slot("exp:", "a", 1, 0.05)]
        assert short[0] is not None and short[1] is None
        clock[0] += timedelta(seconds=0.1)  # a dead worker's slot expires
        assert a.acquire_slot("exp:", "a", 1, 60) is not None
    finally:
        a.close()
        b.close()


def test_find_settings_creates_nobody(store):
    assert store.find_settings("telegram", "6") is None
    assert store.stats()["users"] == 0
    uid = store.ensure_user("telegram", "6")
    store.update_settings(uid, lang="en")
    assert store.find_settings("telegram", "6").lang == "en"
