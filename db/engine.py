"""The one place that makes engines and sessions.

- No URL and no `SHIREN_DATABASE_URL`: SQLite at `core.paths.data_home() / "shiren.db"`.
- `SHIREN_DATABASE_URL=postgresql+psycopg://user:pw@host/db`: PostgreSQL through psycopg 3
  (`postgresql://` and `postgres://` are accepted and mean the same).

SQLite connections get WAL mode, foreign keys on and a busy timeout (concurrent writers wait instead
of failing). SQLAlchemy takes over SQLite's transaction handling (the driver's own is off), so
`BEGIN` really starts a transaction, DDL included; a write transaction opened through `write_engine`
starts with `BEGIN IMMEDIATE`, which takes the write lock up front, so a read-then-write transaction
never dies with "database is locked" while upgrading its lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from core.types import ShirenError

ENV_URL = "SHIREN_DATABASE_URL"
DB_FILENAME = "shiren.db"
# How long a SQLite writer waits for the lock before giving up, in seconds.
SQLITE_BUSY_TIMEOUT_S = 60.0
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# Execution option read by the SQLite `begin` hook.
_BEGIN_OPTION = "shiren_sqlite_begin"


class DatabaseConfigError(ShirenError, ValueError):
    """The database URL is unusable."""


def default_url() -> str:
    """`SHIREN_DATABASE_URL` if set, else the SQLite file in the data dir (created on first use)."""
    env = os.environ.get(ENV_URL, "").strip()
    if env:
        return env
    from core.paths import data_home

    return f"sqlite:///{data_home() / DB_FILENAME}"


def normalize_url(url: str | URL | None) -> URL:
    """Parse `url` (None: `default_url()`), pinning PostgreSQL to the psycopg 3 driver."""
    raw = default_url() if url is None else url
    try:
        u = make_url(raw)
    except Exception as e:  # ArgumentError and friends: say which setting is wrong
        raise DatabaseConfigError(
            f"Not a database URL: {str(raw)!r} ({e}). Set {ENV_URL} to e.g. "
            "postgresql+psycopg://user:password@host/dbname"
        ) from None
    backend = u.get_backend_name()
    if backend == "postgres":
        u = u.set(drivername="postgresql+psycopg")
    elif backend == "postgresql" and u.get_driver_name() in ("", "psycopg2") and "+" not in u.drivername:
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() not in SUPPORTED_BACKENDS:
        raise DatabaseConfigError(
            f"Unsupported database {u.get_backend_name()!r}: Shiren stores its data in SQLite or PostgreSQL "
            f"({ENV_URL}=postgresql+psycopg://user:password@host/dbname)."
        )
    return u


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def safe_url(engine_or_url: Engine | URL | str) -> str:
    """The URL for messages: the password hidden."""
    u = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return u.render_as_string(hide_password=True)


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """Create an engine for `url` (None: `default_url()`). Extra kwargs go to `create_engine`."""
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(u, **kwargs)
    opts: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 40, "pool_timeout": 60}
    opts.update(kwargs)
    return create_engine(u, **opts)


def _sqlite_engine(u: URL, **kwargs: Any) -> Engine:
    database = u.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    connect_args.update(kwargs.pop("connect_args", {}))
    opts: dict[str, Any] = {"connect_args": connect_args}
    if not memory:
        opts.update(pool_size=10, max_overflow=40, pool_timeout=120)
    opts.update(kwargs)
    engine = create_engine(u, **opts)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (the `begin` hook below) emit BEGIN instead of the driver's guesswork.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))

    return engine


def write_engine(engine: Engine) -> Engine:
    """The same engine (same pool), but its transactions take SQLite's write lock at BEGIN.

    On PostgreSQL it is simply `engine`.
    """
    if not is_sqlite(engine):
        return engine
    return engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """`with session_scope(engine, write=True) as s:` — one transaction, committed on success."""
    bind = write_engine(engine) if write else engine
    with Session(bind, expire_on_commit=False) as s, s.begin():
        yield s
