"""Two bot workers on one database behind one (fake) load balancer: updates alternate between them, and
every multi-step flow still works, since no state lives in a worker's memory (bot.workers, bot_state).

Runs on SQLite and on PostgreSQL (SHIREN_TEST_POSTGRES_URL). The last tests kill a worker mid-request
(its event loop stopped dead: no cleanup, no lease released) and watch the survivor answer for it and
take over the feedback leader's lease.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from db_fixtures import (
    _SKIP_REASON,
    _drop_pg_database,
    _fresh_pg_database,
    make_poems,
    make_request,
    pg_admin_url,
)
from fake_telegram import BotHarness, FakeTelegram, poem_id, shared_tiny_poet

from bot.config import BotConfig
from bot.workers import JOURNAL_PREFIX, LEADER, reap
from db.store import Store

HEARTBEAT_S = 0.5  # leases live 1.5 s: a dead worker is noticed within 2 s, and a live one on a slow, busy
# 2-core machine is not taken for dead (at 0.2 s a late heartbeat once let the other worker reap a running request)


class SwitchablePoet:
    """The shared tiny poet; with `stuck` set, a generation hangs (the worker is killed meanwhile)."""

    def __init__(self, poet) -> None:
        self._poet = poet
        self.stuck = False
        self.entered = threading.Event()

    def __getattr__(self, name):
        return getattr(self._poet, name)

    async def awrite(self, *args, **kwargs):
        if self.stuck:
            self.entered.set()
            await asyncio.Event().wait()
        return await self._poet.awrite(*args, **kwargs)


class Workers:
    def __init__(self, url: str) -> None:
        self.url = url
        self.fake = FakeTelegram(workers=2).start()
        self.store = Store(url)  # the test's own view of the database
        self.stores = [Store(url), Store(url)]  # one engine per worker, as two processes would have
        self.poets = [SwitchablePoet(shared_tiny_poet()), SwitchablePoet(shared_tiny_poet())]
        self.reloads = [0, 0]
        self.harnesses = []
        for i in range(2):
            config = BotConfig(token=self.fake.token, api_url=self.fake.api_url_for(i), admin_ids=frozenset({1}),
                               rate_burst=4, rate_per_minute=0.5, heartbeat_s=HEARTBEAT_S, adapter_poll_s=0.3,
                               history_page_size=5)
            self.harnesses.append(BotHarness(self.fake, config, killable=True, poet=self.poets[i],
                                             store=self.stores[i], reload=self._reload_hook(i)))

    def _reload_hook(self, i: int):
        def reload():
            self.reloads[i] += 1

        return reload

    def start(self) -> Workers:
        for h in self.harnesses:
            h.start()
        return self

    def close(self) -> None:
        for h in self.harnesses:
            h.stop()
        self.fake.stop()
        for s in (*self.stores, self.store):
            s.close()

    def bot_data(self, i: int) -> dict:
        return self.harnesses[i].app.bot_data

    def worker_id(self, i: int) -> str:
        return self.bot_data(i)["worker"]

    def user_id(self, tg_user: int) -> int:
        return self.store.ensure_user("telegram", str(tg_user))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def w(request, tmp_path_factory):
    if request.param == "sqlite":
        url, cleanup = f"sqlite:///{tmp_path_factory.mktemp('workers')}/t.db", None
    else:
        admin = pg_admin_url()
        if admin is None:
            pytest.skip(_SKIP_REASON)
        url, name = _fresh_pg_database(admin)
        cleanup = (admin, name)
    ws = Workers(url).start()
    try:
        yield ws
    finally:
        ws.close()
        if cleanup is not None:
            _drop_pg_database(*cleanup)


def until(pred, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_updates_alternate_between_the_two_workers(w):
    a = w.fake.ask(701, "/help")
    b = w.fake.ask(701, "/help")
    assert {a.worker, b.worker} == {0, 1}


def test_poem_picker_on_one_worker_answered_on_the_other(w):
    fake = w.fake
    r = fake.ask(702, "/poem 秋思")
    mark = fake.mark()
    fake.click(702, r, next(b for b in r.buttons if b.endswith(":五绝")))
    p = fake.wait("sendMessage", chat_id=702, since=mark)[0]
    assert "五绝" in p.text and "《秋思》" in p.text and p.worker != r.worker
    # 词: the picker becomes a 词牌 choice (one worker), the choice writes it (the other)
    r = fake.ask(702, "/poem 词 春游")
    e_mark = fake.mark()
    fake.click(702, r, next(b for b in r.buttons if b.endswith(":浣溪沙")))
    p = fake.wait("sendMessage", chat_id=702, since=e_mark)[0]
    assert p.worker != r.worker and w.store.get_poem(poem_id(p)).cipai == "浣溪沙"
    assert w.store.get_poem(poem_id(p)).request.title == "春游"


def test_ci_browser_pages_and_writes_across_workers(w):
    fake = w.fake
    r = fake.ask(703, "/ci")
    assert any(b == "cb:2" for b in r.buttons)
    mark = fake.mark()
    fake.click(703, r, "cb:2")
    e = fake.wait("editMessageText", chat_id=703, since=mark)[0]
    assert "2/" in e.text and e.worker != r.worker
    name = next(b for b in e.buttons if b.startswith("cp:")).split(":", 1)[1]
    mark = fake.mark()
    fake.click(703, e, f"cp:{name}")
    pat = fake.wait("sendMessage", chat_id=703, since=mark)[0]
    mark = fake.mark()
    fake.click(703, pat, f"cw:{name}")
    p = fake.wait("sendMessage", chat_id=703, since=mark)[0]
    assert w.store.get_poem(poem_id(p)).cipai == name and p.worker != pat.worker


def test_forget_asked_on_one_worker_confirmed_on_the_other(w):
    fake = w.fake
    w.fake.ask(704, "/help")
    w.store.record_poems(w.user_id(704), make_request(), make_poems(1))
    r = fake.ask(704, "/forget")
    yes = next(b for b in r.buttons if b.startswith("fg:y:"))
    mark = fake.mark()
    fake.click(704, r, yes)
    e = fake.wait("editMessageText", chat_id=704, since=mark)[0]
    assert e.worker != r.worker
    assert w.store.find_settings("telegram", "704") is None  # gone, with its poems and bot state
    again = fake.click(704, r, yes)  # the same button once more: expired, nothing happens
    assert again.params.get("show_alert") and fake.quiet(0.4, chat_id=704) == []


def test_history_search_and_paging_across_workers(w):
    fake = w.fake
    fake.ask(705, "/help")
    uid = w.user_id(705)
    for title in ["春日"] * 7 + ["秋夜"] * 6:
        w.store.record_poems(uid, make_request(title=title, n=1), make_poems(1, title=title))
    r = fake.ask(705, "/history 秋")  # the poems' text has 春 in every one: search 秋 (titles only)
    assert "共 6 首" in r.text and "1/2" in r.text and r.buttons == ["h:2"]
    mark = fake.mark()
    fake.click(705, r, "h:2")
    e = fake.wait("editMessageText", chat_id=705, since=mark)[0]
    assert e.worker != r.worker and "2/2" in e.text and "秋夜" in e.text and "春日" not in e.text


def test_rating_and_re_rating_on_different_workers(w):
    fake = w.fake
    p = fake.ask(706, "月")
    pid = poem_id(p)
    a = fake.click(706, p, f"r:{pid}:3")
    b = fake.click(706, p, f"r:{pid}:5")
    assert a.worker != b.worker
    until(lambda: w.store.get_poem(pid).rating == 5, what="the re-rating")
    assert w.store.stats()["ratings"] == 1


def test_revise_picker_and_line_on_different_workers(w):
    fake = w.fake
    p = fake.ask(707, "风")
    pid = poem_id(p)
    mark = fake.mark()
    fake.click(707, p, f"e:{pid}")
    picker = fake.wait("sendMessage", chat_id=707, since=mark)[0]
    mark = fake.mark()
    fake.click(707, picker, f"ev:{pid}:1")
    rev = fake.wait("sendMessage", chat_id=707, since=mark, where=lambda c: "r:" in "".join(c.buttons))[0]
    assert rev.worker != picker.worker
    assert w.store.revisions(pid) == [poem_id(rev)]


def test_rate_limit_holds_across_workers(w):
    """Burst 4: of five requests, spread over both workers, four are written and one is refused."""
    fake = w.fake
    mark = fake.mark()
    for topic in "一二三四五":
        fake.send(708, topic)
    replies = fake.wait("sendMessage", chat_id=708, since=mark, count=5, timeout=60)
    poems = [c for c in replies if any(b.startswith("r:") for b in c.buttons)]
    assert len(poems) == 4 and sum("请慢一点" in c.text for c in replies) == 1
    assert {c.worker for c in replies} == {0, 1}
    assert len(w.store.history(w.user_id(708), limit=10)) == 4


def test_global_cap_counts_every_workers_generations(w):
    limit = w.bot_data(0)["cap"].limit
    held = [w.store.acquire_slot("gen:", "elsewhere", limit, 60) for _ in range(limit)]  # all slots busy
    try:
        assert all(held)
        for _ in range(2):  # on both workers
            r = w.fake.ask(709, "山")
            assert "正忙" in r.text and not r.buttons
    finally:
        for name in held:
            w.store.release_lease(name)
    assert any(b.startswith("r:") for b in w.fake.ask(709, "山").buttons)


def test_a_redelivered_update_is_not_answered_or_stored_twice(w):
    fake = w.fake
    p = fake.ask(710, "雪")
    update_id = fake.next_update_id - 1
    poems = w.store.stats()["poems"]
    mark = fake.mark()
    fake.redeliver(update_id, 1 - p.worker)  # the other worker gets it again
    assert fake.quiet(0.8, chat_id=710, since=mark) == []
    assert w.store.stats()["poems"] == poems


def test_inline_answers_are_cached_for_every_worker(w):
    first = w.fake.ask_inline(713, "秋思")
    n = w.store.count_history(w.user_id(713))
    again = w.fake.ask_inline(713, "秋思")
    assert again.worker != first.worker
    assert [r["id"] for r in again.params["results"]] == [r["id"] for r in first.params["results"]]
    assert w.store.count_history(w.user_id(713)) == n  # written once


def test_a_promoted_adapter_reaches_every_worker(w):
    before = list(w.reloads)
    w.store.add_adapter("fb-workers-1", "/nonexistent", None, {}, status="active")  # as a round on the leader
    until(lambda: all(w.bot_data(i).get("adapter_version") == "fb-workers-1" for i in range(2)),
          what="both workers to load the adapter")
    assert all(w.reloads[i] == before[i] + 1 for i in range(2))


def test_the_leader_answers_a_stored_but_unsent_poem_of_a_dead_worker(w):
    """A journal row left "stored" by a worker that is gone: the leader sends that poem."""
    uid = w.user_id(711)
    (pid,) = w.store.record_poems(uid, make_request(n=1), make_poems(1))
    name = f"{JOURNAL_PREFIX}99999"
    assert w.store.acquire_lease(name, "dead-worker", 3600, {"chat": 711, "lang": "zh", "state": "stored",
                                                              "poem": pid})
    sent = w.fake.wait("sendMessage", chat_id=711, timeout=10)[0]
    assert poem_id(sent) == pid and w.store.leases(name)[0].value["state"] == "reaped"
    leader = next(i for i in range(2) if w.bot_data(i)["worker"] == w.store.leases(LEADER)[0].holder)
    assert w.harnesses[leader].call(reap(w.harnesses[leader].app)) == 0  # answered once only


def test_a_worker_killed_mid_request_the_user_gets_a_retry_message_and_the_leader_moves(w):
    fake, store = w.fake, w.store
    # worker 0 leads (it takes the lease over; its own ticks renew it). Worker 1 ticks too and may take
    # the lease between the release and the acquire, so drop and take it until worker 0 has it.
    def worker_0_takes_the_lease() -> bool:
        store.release_lease(LEADER)
        return store.acquire_lease(LEADER, w.worker_id(0), 3 * HEARTBEAT_S)

    until(worker_0_takes_the_lease, what="worker 0 to take the feedback lease")
    until(lambda: w.bot_data(0).get("leader") is True, what="worker 0 to lead")
    w.poets[0].stuck = True
    poems = store.stats()["poems"]
    mark = fake.mark()
    fake.route_next(0)
    fake.send(712, "林")
    update_id = fake.next_update_id - 1
    assert w.poets[0].entered.wait(20), "worker 0 never started the poem"
    assert store.leases(f"{JOURNAL_PREFIX}{update_id}")[0].holder == w.worker_id(0)

    w.harnesses[0].kill()  # dead mid-generation: nothing stored, nothing sent, no lease released
    fake.down(0)
    retry = fake.wait("sendMessage", chat_id=712, since=mark, timeout=15)[0]
    assert retry.worker == 1 and ("再发一次" in retry.text or "send it again" in retry.text)
    until(lambda: store.leases(LEADER) and store.leases(LEADER)[0].holder == w.worker_id(1),
          what="worker 1 to take the feedback lease")
    until(lambda: w.bot_data(1).get("leader") is True, what="worker 1 to know it leads")
    assert store.stats()["poems"] == poems  # nothing stored for the interrupted request
    fake.quiet(0.8)
    assert len(fake.find("sendMessage", chat_id=712, since=mark)) == 1  # one answer, from the leader
    # the user sends it again: the surviving worker writes it, once
    p = fake.ask(712, "林")
    assert p.worker == 1 and any(b.startswith("r:") for b in p.buttons)
    assert store.stats()["poems"] == poems + 1


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request, tmp_path):
    """Two workers receiving real webhook POSTs (PTB's tornado server), spread by the fake in turn."""
    from fake_telegram import WEBHOOK_SECRET

    if request.param == "sqlite":
        url, cleanup = f"sqlite:///{tmp_path}/t.db", None
    else:
        admin = pg_admin_url()
        if admin is None:
            pytest.skip(_SKIP_REASON)
        url, name = _fresh_pg_database(admin)
        cleanup = (admin, name)
    fake = FakeTelegram().start()
    stores = [Store(url), Store(url)]
    ports = [_free_port(), _free_port()]
    fake.use_webhooks([f"http://127.0.0.1:{p}/hook" for p in ports], WEBHOOK_SECRET)
    harnesses = [BotHarness(fake, BotConfig(token=fake.token, api_url=fake.api_url, heartbeat_s=HEARTBEAT_S),
                            webhook_port=ports[i], poet=shared_tiny_poet(), store=stores[i]).start()
                 for i in range(2)]
    try:
        yield fake, stores[0]
    finally:
        for h in harnesses:
            h.stop()
        fake.stop()
        for st in stores:
            st.close()
        if cleanup is not None:
            _drop_pg_database(*cleanup)


def test_two_workers_behind_one_webhook(hooks):
    fake, store = hooks
    r = fake.ask(801, "/poem 秋思")
    mark = fake.mark()
    fake.click(801, r, next(b for b in r.buttons if b.endswith(":七绝")))
    p = fake.wait("sendMessage", chat_id=801, since=mark)[0]
    pid = poem_id(p)
    fake.click(801, p, f"r:{pid}:4")
    until(lambda: store.get_poem(pid).rating == 4, what="the rating")
    f = fake.ask(801, "/forget")
    mark = fake.mark()
    fake.click(801, f, next(b for b in f.buttons if b.startswith("fg:y:")))
    fake.wait("editMessageText", chat_id=801, since=mark)
    assert store.find_settings("telegram", "801") is None
    workers = [w for _, w in fake.webhook_deliveries]
    assert workers == [0, 1, 0, 1, 0]  # 5 updates, each on the other worker
