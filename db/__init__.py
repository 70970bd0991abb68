"""Shiren's storage layer: SQLite (default) or PostgreSQL, behind `db.store.Store`.

    from db import open_store
    store = open_store()            # SHIREN_DATABASE_URL, or SQLite in the data dir; migrates to head
    uid = store.ensure_user("telegram", "12345", "李白")

The bot and the terminal app use `Store` only. Schema changes are Alembic migrations in
db/migrations/ (run with `shiren db upgrade`, or automatically by `open_store(upgrade=True)`).
"""

from db.migrate import UPGRADE_COMMAND, SchemaError
from db.store import (
    AdapterRecord,
    ForbiddenError,
    InvalidValueError,
    NotFoundError,
    PoemRecord,
    RatedPoem,
    RunRecord,
    Store,
    StoreError,
    UserSettings,
    open_store,
)

__all__ = [
    "UPGRADE_COMMAND",
    "AdapterRecord",
    "ForbiddenError",
    "InvalidValueError",
    "NotFoundError",
    "PoemRecord",
    "RatedPoem",
    "RunRecord",
    "SchemaError",
    "Store",
    "StoreError",
    "UserSettings",
    "open_store",
]
