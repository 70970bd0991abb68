"""Per-user rate limiting and a global cap on generations in flight (no queue pile-up), both kept in the
database so that they hold across every bot worker on it.

- `RateLimiter`: a token bucket per user in `bot_state` (kind "rate"), row-locked: with N workers a
  user still gets `burst` requests at once and `per_minute` after, not N times that.
- `ConcurrencyCap`: at most `limit` generations in flight across all workers, as short-lived leases
  ("gen:…") in `bot_leases`; a dead worker's slots expire. It also counts this worker's own (for /stats).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class RateLimiter:
    """A token bucket per user: `burst` requests at once, refilled at `per_minute` (in the Store)."""

    def __init__(self, burst: int = 5, per_minute: float = 12.0, store: Any = None):
        self.burst = max(1, int(burst))
        self.per_minute = float(per_minute)
        self.store = store  # set in post_init when the Store is opened there

    async def acquire(self, user_id: int) -> float:
        """0.0 when the user (a Store id) may go ahead; otherwise the seconds until they may."""
        return await asyncio.to_thread(self.store.take_token, user_id, self.burst, self.per_minute)

    async def refund(self, user_id: int) -> None:
        """Give back a token (the request was refused for another reason, e.g. busy)."""
        await asyncio.to_thread(self.store.refund_token, user_id, self.burst)


class CapacityError(Exception):
    """The global cap is reached: reply "busy" instead of queueing."""


class ConcurrencyCap:
    """At most `limit` generations in flight across all workers; `slot()` fails fast beyond it.

    Without a Store (`store` None) the cap is this process's alone."""

    SLOT_PREFIX = "gen:"

    def __init__(self, limit: int = 32, *, store: Any = None, worker: str = "", ttl_s: float = 180.0):
        self.limit = max(1, int(limit))
        self.store = store
        self.worker = worker
        self.ttl_s = ttl_s  # a slot outlives a generation's timeout; a dead worker's slot expires then
        self.in_flight = 0  # this worker's
        self.peak = 0

    @contextlib.asynccontextmanager
    async def slot(self):
        if self.in_flight >= self.limit:
            raise CapacityError
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        name = None
        try:
            if self.store is not None:
                name = await asyncio.to_thread(self.store.acquire_slot, self.SLOT_PREFIX, self.worker,
                                               self.limit, self.ttl_s)
                if name is None:
                    raise CapacityError
            yield
        finally:
            self.in_flight -= 1
            if name is not None:
                await asyncio.shield(asyncio.to_thread(self.store.release_lease, name))
