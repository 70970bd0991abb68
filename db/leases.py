"""Names and lifetimes of the `bot_leases` rows (db.store.Store.acquire_lease) that bot workers and the
feedback training share: one definition, read by both sides, so neither imports the other."""

from __future__ import annotations

ROUND_LEASE = "feedback-round"  # a feedback round in progress on some bot worker (scheduled or /retrain)
ROUND_LEASE_S = 6 * 3600.0  # outlives any round; a dead worker's lease expires
