"""Load: 50 simulated users send 5 requests each at once. Every request is answered, every rating is
stored exactly once; the reply-time percentiles are printed (not asserted)."""

from __future__ import annotations

import os
import statistics
import time

import pytest
from fake_telegram import RunningBot, poem_id

USERS = int(os.environ.get("SHIREN_BOT_LOAD_USERS", "50"))
BASE = 50_000
CHECK = "/check 床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    """SQLite by default; SHIREN_BOT_LOAD_DB=postgres runs it on a fresh PostgreSQL database
    (SHIREN_TEST_POSTGRES_URL), the database several workers would share (docs/scale.md)."""
    url = cleanup = None
    if os.environ.get("SHIREN_BOT_LOAD_DB") == "postgres":
        from db_fixtures import _drop_pg_database, _fresh_pg_database, pg_admin_url

        if pg_admin_url() is None:
            pytest.skip("SHIREN_BOT_LOAD_DB=postgres needs SHIREN_TEST_POSTGRES_URL")
        url, name = _fresh_pg_database(pg_admin_url())
        cleanup = (pg_admin_url(), name)
    try:
        with RunningBot(tmp_path_factory.mktemp("bot_load"), max_concurrent=64, rate_burst=5, url=url) as rb:
            yield rb
    finally:
        if cleanup is not None:
            _drop_pg_database(*cleanup)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def _kind(call, check_ids: dict[int, int]) -> str:
    if any(b.startswith("r:") for b in call.buttons) or "正忙" in call.text or "请慢一点" in call.text:
        return "poem"
    if call.reply_to is not None and call.reply_to == check_ids.get(call.chat_id):
        return "check"
    if "/acrostic" in call.text:
        return "help"
    if "默认诗体：" in call.text:
        return "settings"
    if "我的诗" in call.text or "还没有诗" in call.text:
        return "history"
    return "other"


def test_50_users_5_requests_each_at_once(rb, capsys):
    fake = rb.fake
    users = [BASE + i for i in range(USERS)]
    mark = fake.mark()
    sent: dict[tuple[int, str], float] = {}
    check_ids: dict[int, int] = {}
    t0 = time.monotonic()
    for u in users:  # all 250 updates land in the queue together
        for kind, text in (("poem", "春夏秋冬山水月"[u % 7] + "夜"), ("check", CHECK), ("history", "/history"), ("help", "/help"),
                           ("settings", "/settings")):
            sent[(u, kind)] = time.monotonic()
            msg = fake.send(u, text)
            if kind == "check":
                check_ids[u] = msg["message_id"]
    replies = fake.wait("sendMessage", since=mark, count=5 * USERS, timeout=240,
                        where=lambda c: c.chat_id in check_ids)
    elapsed = time.monotonic() - t0
    fake.quiet(0.5)
    replies = fake.find("sendMessage", since=mark, where=lambda c: c.chat_id in check_ids)
    assert len(replies) == 5 * USERS  # every request answered, exactly once

    latency: dict[str, list[float]] = {}
    got: dict[tuple[int, str], object] = {}
    for c in replies:
        k = _kind(c, check_ids)
        assert k != "other", c.text
        assert (c.chat_id, k) not in got, f"two {k} replies to {c.chat_id}"
        got[(c.chat_id, k)] = c
        latency.setdefault(k, []).append(c.t - sent[(c.chat_id, k)])
    assert len(got) == 5 * USERS

    poems = {u: got[(u, "poem")] for u in users if got[(u, "poem")].buttons}
    busy = USERS - len(poems)
    assert rb.store.stats()["poems"] == len(poems)

    # every user rates their poem, then re-rates it — all at once
    mark = fake.mark()
    t1 = time.monotonic()
    qids = {}
    for stars in (3, 5):
        for u, call in poems.items():
            qids[fake.press(u, call, f"r:{poem_id(call)}:{stars}")] = time.monotonic()
    answers = fake.wait("answerCallbackQuery", since=mark, count=len(qids), timeout=120)
    rating_latency = [a.t - qids[str(a.params["callback_query_id"])] for a in answers]
    rating_elapsed = time.monotonic() - t1
    # the second edit of a message can be identical to the first (presses raced): "not modified", no edit
    fake.wait("editMessageText", since=mark, count=len(poems), timeout=120)
    fake.quiet(0.5)
    stats = rb.store.stats()
    assert stats["ratings"] == len(poems)  # one row per rated poem: re-rating updated it
    for u, call in poems.items():
        rec = rb.store.get_poem(poem_id(call))
        assert rec.user_id == rb.user_id(u)
    # the final stars are the re-rating's unless the two presses were handled out of order
    assert all(rb.store.get_poem(poem_id(c)).rating in (3, 5) for c in poems.values())

    every = [x for xs in latency.values() for x in xs]
    lines = [
        f"database: {rb.store.url.split(':', 1)[0]}",
        f"load: {USERS} users × 5 requests = {len(every)} requests in {elapsed:.1f}s; all answered: "
        f"{len(got) == 5 * USERS}; poems {len(poems)}, busy {busy}; peak generations in flight "
        f"{rb.bot_data['cap'].peak}",
        f"reply time all:    p50 {statistics.median(every):.2f}s  p95 {_pct(every, 0.95):.2f}s  "
        f"max {max(every):.2f}s",
    ]
    for k in ("poem", "check", "history", "help", "settings"):
        xs = latency[k]
        lines.append(f"reply time {k:<8}: p50 {statistics.median(xs):.2f}s  p95 {_pct(xs, 0.95):.2f}s")
    lines.append(f"ratings: {len(qids)} presses in {rating_elapsed:.1f}s, stored {stats['ratings']} "
                 f"(one per poem); answer p50 {statistics.median(rating_latency):.2f}s  "
                 f"p95 {_pct(rating_latency, 0.95):.2f}s")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
