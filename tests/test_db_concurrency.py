"""Many users rating at once: every rating stored exactly once, none lost (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

from db_fixtures import *  # noqa: F403
from db_fixtures import make_poems, make_request

USERS = 50
POEMS_PER_USER = 100
RERATES = 20  # each user changes their mind on this many poems


def _stars(u: int, i: int, final: bool) -> int:
    return (u + i + (2 if final else 0)) % 5 + 1


def test_concurrent_ratings_all_stored_exactly_once(store):
    # Set-up: 50 users with 100 poems each (ensure_user raced by two threads per user).
    user_ids: dict[int, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(USERS * 2)

    def register(u: int) -> None:
        try:
            barrier.wait()
            uid = store.ensure_user("telegram", f"user{u}", f"用户{u}")
            assert user_ids.setdefault(u, uid) == uid
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=register, args=(u,)) for u in range(USERS) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(set(user_ids.values())) == USERS and store.stats()["users"] == USERS

    poems = {
        u: store.record_poems(user_ids[u], make_request(), make_poems(POEMS_PER_USER)) for u in range(USERS)
    }

    barrier = threading.Barrier(USERS)

    def rate_all(u: int) -> None:
        try:
            uid, ids = user_ids[u], poems[u]
            barrier.wait()
            for i, pid in enumerate(ids):
                store.rate(uid, pid, _stars(u, i, final=False))
            for i, pid in enumerate(ids[:RERATES]):
                store.rate(uid, pid, _stars(u, i, final=True))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=rate_all, args=(u,)) for u in range(USERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]

    assert store.count_ratings() == USERS * POEMS_PER_USER
    rows = store.rated_poems()
    assert len({(r.user_id, r.poem_id) for r in rows}) == len(rows) == USERS * POEMS_PER_USER
    got = {(r.user_id, r.poem_id): r.stars for r in rows}
    for u in range(USERS):
        for i, pid in enumerate(poems[u]):
            assert got[(user_ids[u], pid)] == _stars(u, i, final=i < RERATES), (u, i)


def test_sqlite_separate_stores_wait_for_each_other(tmp_path):
    """Writers with no shared in-process lock (as separate processes would be) wait on the busy
    timeout instead of failing with "database is locked"."""
    from db.store import Store

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [Store(url) for _ in range(4)]
    try:
        uids = [s.ensure_user("cli", f"w{k}") for k, s in enumerate(stores)]
        ids = [
            s.record_poems(uid, make_request(), make_poems(50)) for s, uid in zip(stores, uids, strict=True)
        ]
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(stores))

        def work(k: int) -> None:
            try:
                barrier.wait()
                for pid in ids[k]:
                    stores[k].rate(uids[k], pid, 3)
                    stores[k].rate(uids[k], pid, 4)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        rows = stores[0].rated_poems()
        assert len(rows) == 200 and {r.stars for r in rows} == {4}
    finally:
        for s in stores:
            s.close()
