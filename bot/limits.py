"""Per-user rate limiting and a global cap on generations in flight (no queue pile-up)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per user: `burst` requests at once, refilled at `per_minute`.

    Runs on the event loop only (no locks needed). `acquire` returns 0.0 when allowed, otherwise the
    seconds to wait before the next request would be.
    """

    def __init__(self, burst: int = 5, per_minute: float = 12.0, clock=time.monotonic, max_users: int = 100_000):
        self.burst = max(1, int(burst))
        self.rate = float(per_minute) / 60.0
        self.clock = clock
        self.max_users = max_users
        self._buckets: dict[int, _Bucket] = {}

    def acquire(self, user_id: int) -> float:
        now = self.clock()
        b = self._buckets.get(user_id)
        if b is None:
            if len(self._buckets) >= self.max_users:
                self._evict(now)
            b = self._buckets[user_id] = _Bucket(float(self.burst), now)
        else:
            b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate)
            b.stamp = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate if self.rate > 0 else float("inf")

    def refund(self, user_id: int) -> None:
        """Give back a token (the request was refused for another reason, e.g. busy)."""
        b = self._buckets.get(user_id)
        if b is not None:
            b.tokens = min(float(self.burst), b.tokens + 1.0)

    def forget(self, user_id: int) -> None:
        self._buckets.pop(user_id, None)

    def _evict(self, now: float) -> None:
        full = [u for u, b in self._buckets.items() if b.tokens + (now - b.stamp) * self.rate >= self.burst]
        for u in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[u]


class CapacityError(Exception):
    """The global cap is reached: reply "busy" instead of queueing."""


class ConcurrencyCap:
    """At most `limit` generations in flight across all users; `slot()` fails fast beyond it."""

    def __init__(self, limit: int = 32):
        self.limit = max(1, int(limit))
        self.in_flight = 0
        self.peak = 0

    @contextmanager
    def slot(self):
        if self.in_flight >= self.limit:
            raise CapacityError
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
