"""Ratings → preference pairs, the stars proxy, the promotion gates, the lock and "new ratings" counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import torch

from core.prompt import EOS, SEP
from core.types import PoemRequest
from training.feedback import FeedbackBusyError, count_new_ratings, feedback_lock, gate_reasons, is_running
from training.preference import (
    StarsProxy,
    build_preference_data,
    default_prompt,
    kto_rows,
    pairs_from_ratings,
)

torch.set_num_threads(1)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rp(i, stars, text, req, rated=T0):
    return SimpleNamespace(rating_id=i, poem_id=100 + i, user_id=1, stars=stars, text=text, request=req, rated=rated)


SPRING = PoemRequest(form="五绝", title="春夜", seed=1, n=4)
SPRING_OTHER_SEED = PoemRequest(form="五绝", title="春夜", seed=99, n=1)  # same request: seed/n do not count
AUTUMN = PoemRequest(form="五绝", title="秋思", keywords=("明月",))


def test_pairs_same_request_different_stars():
    rated = [
        rp(1, 5, "江水流不尽，\n春风吹雨来。", SPRING),
        rp(2, 1, "山高月色寒，\n林深鸟语稀。", SPRING_OTHER_SEED),
        rp(3, 3, "花开满城东，\n人去空楼上。", SPRING),
        rp(4, 4, "明月照高楼，\n清光满九州。", AUTUMN),  # alone: no pair
    ]
    pairs, lone = pairs_from_ratings(rated)
    assert {(p.chosen_stars, p.rejected_stars) for p in pairs} == {(5, 1), (5, 3), (3, 1)}
    for p in pairs:
        assert p.request.title == "春夜" and p.source == "rated"
        assert p.prompt == default_prompt(SPRING) and p.prompt.endswith(SEP)
        assert p.chosen.endswith(EOS) and "\n" not in p.chosen and p.chosen != p.rejected
    top = pairs[0]
    assert top.chosen == "江水流不尽，春风吹雨来。" + EOS and top.rejected == "山高月色寒，林深鸟语稀。" + EOS
    assert [r.rating_id for r in lone] == [4]


def test_lone_ratings_get_fresh_samples_ranked_by_the_engine():
    from core.testing import tiny_poet

    poet = tiny_poet(0, conditioned=True)
    rated = [rp(1, 5, "江水流不尽，\n春风吹雨来。", SPRING), rp(2, 1, "山高月色寒，\n林深鸟语稀。", AUTUMN),
             rp(3, 3, "花开满城东，\n人去空楼上。", PoemRequest(form="五绝", title="夏"))]  # 3 stars: neutral
    pairs, info = build_preference_data(rated, poet, n_fresh=3)
    assert info["pairs_rated"] == 0 and info["pairs_fresh"] == 2 and info["lone_ratings"] == 3
    liked = next(p for p in pairs if p.request == SPRING)
    disliked = next(p for p in pairs if p.request == AUTUMN)
    assert liked.chosen.startswith("江水流不尽") and not liked.rejected.startswith("江水")
    assert disliked.rejected.startswith("山高月色寒") and disliked.chosen.endswith(EOS)
    assert "<关键>明月" in disliked.prompt  # the conditioned poet's own header
    assert all(p.source == "fresh" for p in pairs)
    # Without a poet, lone ratings are left out.
    assert build_preference_data(rated)[0] == []


def test_kto_rows_and_stars_proxy():
    rated = [rp(i, s, t, SPRING) for i, (s, t) in enumerate(
        [(5, "江水流，\n雨中来。"), (4, "湖上波，\n水中月。"), (1, "山石松，\n林中鸟。"), (2, "石上松，\n林下风。"),
         (3, "花开早，\n人归迟。")])]
    rows = kto_rows(rated)
    assert [r["label"] for r in rows] == [True, True, False, False]
    proxy = StarsProxy.fit(rated)
    assert proxy.predict("江水雨波湖") > proxy.predict("山石松林风") + 1
    assert 1.0 <= proxy.predict("一二三") <= 5.0
    assert StarsProxy.fit([]).predict("水") == 3.0


def _pref(values: list[float | None]) -> dict:
    done = [v for v in values if v is not None]
    return {"preference": sum(done) / len(done), "pref_by_request": values}


def test_gates():
    active = {"failed": 0, "format": 1.0, "rhyme": 1.0, "tone": 0.9, "repeat": 0.01, **_pref([3.0] * 12)}
    assert gate_reasons(active, {**active, **_pref([3.2] * 12)}) == []
    r = gate_reasons(active, {**active, "tone": 0.85, "repeat": 0.02, **_pref([3.0] * 12)})
    assert len(r) == 3 and r[0].startswith("tone dropped") and "repeated-char" in r[1] and "preference" in r[2]
    assert gate_reasons(active, {**active, **_pref([3.05] * 12)}, min_pref_gain=0.1)  # gain too small
    assert gate_reasons({**active, "tone": None}, {**active, "tone": None, **_pref([4.0] * 12)}) == []


def test_gate_needs_a_measurable_paired_gain():
    active = {"failed": 0, "format": 1.0, "rhyme": 1.0, "tone": 1.0, "repeat": 0.0, **_pref([3.0] * 12)}
    # A higher mean from a few lucky poems: +1.5 on half the requests, -1.0 on the others.
    noisy = {**active, **_pref([4.5, 2.0] * 6)}
    assert noisy["preference"] > active["preference"]
    r = gate_reasons(active, noisy)
    assert len(r) == 1 and "not measurable" in r[0] and "95% interval" in r[0]
    # The same mean gain on every request is measurable.
    assert gate_reasons(active, {**active, **_pref([3.25] * 12)}) == []
    # Pairs only where both sides wrote a poem; too few of them is no measurement.
    few = {**active, "pref_by_request": [3.0] * 5 + [None] * 7}
    r = gate_reasons(few, {**few, **_pref([3.5] * 5 + [None] * 7)})
    assert len(r) == 1 and "too few" in r[0]


def test_lock_prevents_overlap(tmp_path):
    from db.store import Store
    from training.feedback import run_feedback_round

    with feedback_lock(tmp_path):
        assert is_running(tmp_path)
        with pytest.raises(FeedbackBusyError, match="already running"), feedback_lock(tmp_path):
            pass
        with Store(f"sqlite:///{tmp_path / 'x.db'}") as store, pytest.raises(FeedbackBusyError):
            run_feedback_round(store, tmp_path / "no-model", force=True, home=tmp_path)
    assert not is_running(tmp_path)
    with feedback_lock(tmp_path):  # released: the next round may start
        pass


def test_new_ratings_counted_by_rated_time_including_rerates(tmp_path):
    from db.store import Store

    with Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        assert count_new_ratings(store) == (0, 0)
        uid = store.ensure_user("cli", "u1")
        from core.types import Poem

        ids = store.record_poems(uid, SPRING, [Poem(text=f"第{i}首", form="五绝") for i in range(3)])
        for pid in ids:
            store.rate(uid, pid, 3)
        assert count_new_ratings(store) == (3, 3)
        run = store.start_run("feedback", {})
        store.finish_run(run, "candidate")
        assert count_new_ratings(store) == (0, 3)
        failed = store.start_run("feedback", {})
        store.finish_run(failed, "failed", error="x")  # a failed round does not consume ratings
        store.rate(uid, ids[0], 5)  # a re-rate is new information
        new, total = count_new_ratings(store)
        assert (new, total) == (1, 3)
        later = [SimpleNamespace(rated=datetime.now(UTC) + timedelta(hours=1))] * 2
        assert count_new_ratings(store, later) == (2, 2)
