"""A request whose every draft hits a dead end is retried under derived seeds before the poet gives up."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from core.poet import DEAD_END_RETRIES, DeadEndError, Poet, retry_request
from core.testing import tiny_poet
from core.types import PoemRequest

REQ = PoemRequest(form="五绝", title="春", seed=5)


@pytest.fixture(scope="module")
def poet():
    p = tiny_poet(seed=0)
    yield p
    p.close()


def _failing(monkeypatch, poet: Poet, fails: int) -> list[int]:
    """Make the first `fails` rankings end in a dead end; returns the seeds the poet tried."""
    seeds: list[int] = []
    real = Poet._rank

    def rank(self, req, plan, rows, avoid=frozenset()):
        seeds.append(req.seed)
        if len(seeds) <= fails:
            raise DeadEndError("the poet could not complete this request; try another seed or fewer constraints")
        return real(self, req, plan, rows, avoid)

    monkeypatch.setattr(Poet, "_rank", rank)
    return seeds


def test_retry_seeds_are_derived_from_the_request():
    assert retry_request(REQ, 0) is REQ
    assert retry_request(REQ, 1).seed == retry_request(REQ, 1).seed != REQ.seed
    assert len({retry_request(REQ, k).seed for k in range(DEAD_END_RETRIES + 1)}) == DEAD_END_RETRIES + 1
    unseeded = replace(REQ, seed=None)
    assert retry_request(unseeded, 2) is unseeded  # a fresh random seed each time, as for any unseeded request


def test_write_retries_and_returns_the_derived_seeds_poems(poet, monkeypatch):
    expected = [p.text for p in poet.write(retry_request(REQ, 1))]
    seeds = _failing(monkeypatch, poet, fails=1)
    assert [p.text for p in poet.write(REQ)] == expected
    assert seeds == [REQ.seed, retry_request(REQ, 1).seed]


def test_write_gives_up_with_a_clear_message(poet, monkeypatch):
    seeds = _failing(monkeypatch, poet, fails=DEAD_END_RETRIES + 1)
    with pytest.raises(DeadEndError, match="could not complete"):
        poet.write(REQ)
    assert len(seeds) == DEAD_END_RETRIES + 1


def test_awrite_retries_through_the_batcher(monkeypatch):
    p = tiny_poet(seed=0)
    try:
        expected = [x.text for x in p.write(retry_request(REQ, 2))]
        seeds = _failing(monkeypatch, p, fails=2)
        got = asyncio.run(p.awrite(REQ))
        assert [x.text for x in got] == expected and seeds[-1] == retry_request(REQ, 2).seed
    finally:
        p.close()
