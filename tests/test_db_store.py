"""Store: users and settings, poems and history, ratings, privacy, adapters, training runs."""

from __future__ import annotations

import json
import time

import pytest
from db_fixtures import *  # noqa: F403
from db_fixtures import make_poems, make_request
from sqlalchemy import func, select

from db.models import Rating, Request
from db.store import NotFoundError, PoemRecord, UserSettings


def test_ensure_user_idempotent_and_settings(store):
    a = store.ensure_user("telegram", "1001", "李白")
    assert store.ensure_user("telegram", "1001") == a
    assert store.ensure_user("telegram", "1001", "李太白") == a
    b = store.ensure_user("tui", "1001")
    assert b != a
    assert store.export_user(a)["user"]["display_name"] == "李太白"
    with pytest.raises(ValueError):
        store.ensure_user("fax", "1")

    assert store.get_settings(a) == UserSettings(default_form="七绝", script="simplified", lang="zh")
    s = store.update_settings(a, default_form="五律", script="traditional")
    assert s == UserSettings(default_form="五律", script="traditional", lang="zh") == store.get_settings(a)
    assert store.get_settings(b) == UserSettings()
    with pytest.raises(ValueError):
        store.update_settings(a, script="cursive")
    with pytest.raises(ValueError):
        store.update_settings(a, default_form="sonnet")
    with pytest.raises(ValueError):
        store.update_settings(a, colour="red")
    with pytest.raises(LookupError):
        store.get_settings(9999)


def test_record_and_get_poem(store):
    uid = store.ensure_user("telegram", "42")
    req = make_request(acrostic="春花", first_line="", cipai="", seed=None)
    ids = store.record_poems(uid, req, make_poems(3), adapter_version="fb-001")
    assert len(ids) == 3 and ids == sorted(ids)
    rec = store.get_poem(ids[1])
    assert isinstance(rec, PoemRecord)
    assert rec.id == ids[1] and rec.user_id == uid and rec.request == req
    assert rec.text.startswith("春风1度") and rec.form == "七绝" and rec.title == "春望"
    assert rec.scores == {"format": True, "rhyme": False, "tone_relaxed": True}
    assert rec.model_version == "base-v1" and rec.adapter_version == "fb-001"
    assert rec.rating is None and rec.logprob == pytest.approx(-2.5)
    assert rec.created.tzinfo is not None
    assert store.poem_owner(ids[0]) == uid
    assert store.get_poem(999_999) is None and store.poem_owner(999_999) is None
    # A 词 with its 词牌.
    ci = store.record_poems(uid, make_request(form="词", cipai="浣溪沙"), make_poems(1, form="词"))[0]
    assert store.get_poem(ci).request.cipai == "浣溪沙"
    with pytest.raises(LookupError):
        store.record_poems(12345, req, make_poems(1))


def test_history_paging_and_search(store):
    uid = store.ensure_user("tui", "me")
    other = store.ensure_user("tui", "other")
    for i in range(7):
        store.record_poems(
            uid, make_request(title=f"题{i}"), make_poems(1, title=f"题{i}", prefix=f"第{i}首")
        )
    store.record_poems(other, make_request(), make_poems(3, title="别人"))
    store.record_poems(uid, make_request(title="月夜"), make_poems(1, title="月夜", prefix="明月100%_"))

    assert store.count_history(uid) == 8 and store.count_history(other) == 3
    page1 = store.history(uid, limit=3)
    page2 = store.history(uid, limit=3, offset=3)
    page3 = store.history(uid, limit=3, offset=6)
    ids = [p.id for p in page1 + page2 + page3]
    assert len(ids) == 8 and ids == sorted(ids, reverse=True)  # newest first, no overlap
    assert page1[0].title == "月夜"
    assert all(p.user_id == uid for p in page1 + page2 + page3)

    assert [p.title for p in store.history(uid, search="第3首")] == ["题3"]
    assert store.count_history(uid, search="第3首") == 1
    assert [p.title for p in store.history(uid, search="月夜")] == ["月夜"]  # by title
    assert store.count_history(uid, search="100%_") == 1  # LIKE wildcards are literal
    assert store.count_history(uid, search="%") == 1
    assert store.history(uid, search="别人") == []  # never someone else's


def test_rate_and_rerate(store):
    uid = store.ensure_user("telegram", "7")
    pid = store.record_poems(uid, make_request(), make_poems(1))[0]
    store.rate(uid, pid, 4)
    assert store.get_poem(pid).rating == 4
    [first] = store.rated_poems()
    time.sleep(0.01)
    store.rate(uid, pid, 2)
    [second] = store.rated_poems()
    assert store.count_ratings() == 1
    assert second.rating_id == first.rating_id and second.stars == 2 and second.rated > first.rated
    assert store.get_poem(pid).rating == 2
    with store.engine.connect() as conn:
        created, updated = conn.execute(select(Rating.created, Rating.updated)).one()
    assert updated > created

    for bad in (0, 6, -1, 2.5, "3", True):
        with pytest.raises(ValueError):
            store.rate(uid, pid, bad)
    assert store.get_poem(pid).rating == 2
    with pytest.raises(LookupError):
        store.rate(uid, 999_999, 3)


def test_rating_someone_elses_poem_is_forbidden(store):
    owner = store.ensure_user("telegram", "owner")
    other = store.ensure_user("telegram", "other")
    pid = store.record_poems(owner, make_request(), make_poems(1))[0]
    with pytest.raises(PermissionError):
        store.rate(other, pid, 5)
    assert store.count_ratings() == 0
    assert store.delete_poem(other, pid) is False
    assert store.get_poem(pid) is not None


def test_delete_poem_removes_its_rating(store):
    uid = store.ensure_user("cli", "u")
    a, b = store.record_poems(uid, make_request(), make_poems(2))
    store.rate(uid, a, 5)
    store.rate(uid, b, 1)
    assert store.delete_poem(uid, a) is True
    assert store.get_poem(a) is None
    assert [r.poem_id for r in store.rated_poems()] == [b]
    assert store.delete_poem(uid, a) is False
    assert store.delete_poem(uid, b) is True
    assert store.count_ratings() == 0 and store.count_history(uid) == 0
    with store.engine.connect() as conn:  # the emptied request went too
        assert conn.execute(select(func.count()).select_from(Request)).scalar() == 0


def test_export_and_forget(store):
    alice = store.ensure_user("telegram", "alice", "Alice")
    bob = store.ensure_user("telegram", "bob", "Bob")
    store.update_settings(alice, script="traditional")
    a_ids = store.record_poems(alice, make_request(), make_poems(2))
    b_ids = store.record_poems(bob, make_request(), make_poems(2))
    for pid in a_ids:
        store.rate(alice, pid, 5)
    store.rate(bob, b_ids[0], 3)

    data = store.export_user(alice)
    json.dumps(data, ensure_ascii=False)  # JSON-able
    assert data["user"]["external_id"] == "alice" and data["user"]["settings"]["script"] == "traditional"
    assert [p["id"] for r in data["requests"] for p in r["poems"]] == a_ids
    assert data["requests"][0]["keywords"] == ["春", "花"]
    assert sorted(r["poem_id"] for r in data["ratings"]) == a_ids
    assert {r["stars"] for r in data["ratings"]} == {5}

    assert store.forget_user(alice) is True
    assert store.forget_user(alice) is False
    assert {r.user_id for r in store.rated_poems()} == {bob}
    assert store.count_ratings() == 1
    assert all(store.get_poem(pid) is None for pid in a_ids)
    with pytest.raises(LookupError):
        store.export_user(alice)
    st = store.stats()
    assert (st["users"], st["poems"], st["ratings"]) == (1, 2, 1)
    # The same external id starts afresh.
    again = store.ensure_user("telegram", "alice")
    assert store.count_history(again) == 0 and store.get_settings(again) == UserSettings()


def test_rated_poems_since_id(store):
    uid = store.ensure_user("tui", "t")
    ids = store.record_poems(uid, make_request(), make_poems(4))
    for i, pid in enumerate(ids):
        store.rate(uid, pid, i + 1)
    rows = store.rated_poems()
    assert [r.stars for r in rows] == [1, 2, 3, 4]
    assert rows[0].request == make_request() and rows[0].text.startswith("春风0")
    cut = rows[1].rating_id
    assert [r.poem_id for r in store.rated_poems(since_id=cut)] == ids[2:]
    assert store.count_ratings(since_id=cut) == 2 and store.count_ratings() == 4


def test_adapters_promote_and_rollback(store):
    assert store.active_adapter() is None and store.rollback() is None
    store.add_adapter("sft-001", "/a/sft-001", None, {"loss": 2.1}, status="active")
    store.add_adapter("fb-001", "/a/fb-001", "sft-001", {"win_rate": 0.6})
    assert [a.status for a in store.list_adapters()] == ["active", "candidate"]
    with pytest.raises(ValueError):
        store.add_adapter("fb-001", "/elsewhere", None, {})
    with pytest.raises(ValueError):
        store.add_adapter("x", "/x", None, {}, status="weird")

    store.promote("fb-001")
    assert store.active_adapter().name == "fb-001"
    assert {a.name: a.status for a in store.list_adapters()} == {"sft-001": "retired", "fb-001": "active"}
    assert store.stats()["active_adapter"] == "fb-001"

    back = store.rollback()
    assert back is not None and back.name == "sft-001" and back.status == "active"
    assert {a.name: a.status for a in store.list_adapters()} == {"sft-001": "active", "fb-001": "retired"}
    assert store.rollback() is None  # sft-001 has no parent

    # Rollback skips a candidate parent and finds the nearest retired ancestor.
    store.add_adapter("fb-002", "/a/fb-002", "sft-001", {})
    store.add_adapter("fb-003", "/a/fb-003", "fb-002", {})
    store.promote("fb-003")
    assert store.rollback().name == "sft-001"
    assert store.active_adapter().name == "sft-001"

    store.set_adapter_status("fb-002", "active")  # same as promote
    assert store.active_adapter().name == "fb-002"
    store.set_adapter_status("fb-002", "retired")
    assert store.active_adapter() is None
    with pytest.raises(NotFoundError):
        store.promote("nope")
    assert store.list_adapters()[1].metrics == {"win_rate": 0.6}


def test_training_runs(store):
    r1 = store.start_run("feedback", {"ratings": 120, "pairs": 40})
    r2 = store.start_run("sft", {"poems": 1000})
    store.finish_run(r1, "promoted", metrics={"win_rate": 0.62}, adapter="fb-001")
    store.finish_run(r2, "failed", error="CUDA out of memory")
    runs = store.list_runs()
    assert [r.id for r in runs] == [r2, r1]
    failed, ok = runs
    assert ok.outcome == "promoted" and ok.metrics == {"win_rate": 0.62} and ok.adapter == "fb-001"
    assert ok.data_counts == {"ratings": 120, "pairs": 40} and ok.finished >= ok.started
    assert failed.outcome == "failed" and failed.error == "CUDA out of memory" and failed.metrics is None
    r3 = store.start_run("feedback", {})
    assert store.list_runs(limit=1)[0].outcome == "running" and store.list_runs(limit=1)[0].finished is None
    assert len(store.list_runs(limit=2)) == 2 and r3 > r2
    with pytest.raises(LookupError):
        store.finish_run(999, "failed")
