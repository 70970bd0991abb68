"""Run the Alembic migrations programmatically (no alembic.ini needed at run time).

The scripts live inside the package (`db/migrations/`), so this works from an installed wheel.
`shiren db upgrade` (db/cli.py) and `Store(upgrade=True)` both end up in `upgrade()`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from core.types import ShirenError
from db.engine import is_sqlite, safe_url, write_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "shiren db upgrade"
# Any constant: serialises concurrent upgrades of one PostgreSQL database (pg_advisory_xact_lock).
_PG_LOCK_KEY = 0x5348_4952_454E  # "SHIREN"


class SchemaError(ShirenError, RuntimeError):
    """The database schema is not the one this code expects."""


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        # Only used when env.py gets no connection; '%' must be doubled for ConfigParser.
        cfg.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS_DIR}"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None: an empty database, never upgraded)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def _run(engine: Engine, fn: str, revision: str) -> None:
    cfg = alembic_config(engine)
    sqlite = is_sqlite(engine)
    with write_engine(engine).connect() as conn:
        raw = conn.connection.dbapi_connection if sqlite else None
        if raw is not None:
            # Batch mode rebuilds tables (copy, drop, rename): with foreign keys on, dropping a parent
            # table would cascade-delete its children. Must be set outside a transaction.
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if not sqlite:
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
                cfg.attributes["connection"] = conn
                getattr(command, fn)(cfg, revision)
                if sqlite:
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise SchemaError(f"Migration left rows with broken foreign keys: {bad[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate to `revision` (default: the newest). Returns the revision the database is at."""
    _run(engine, "upgrade", revision)
    return current_revision(engine)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Migrate down to `revision` ("base": drop everything). Returns the revision the database is at."""
    _run(engine, "downgrade", revision)
    return current_revision(engine)


def require_up_to_date(engine: Engine) -> None:
    """Raise SchemaError, naming the command that fixes it, unless the schema is at head."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = safe_url(engine)
    if current is None:
        state = "has no Shiren tables yet"
    elif current in _known_revisions():
        state = f"is at schema revision {current}, this Shiren needs {head}"
    else:
        state = f"is at schema revision {current}, which this Shiren does not know (newer code wrote it?)"
    raise SchemaError(f"The database {where} {state}. Run `{UPGRADE_COMMAND}` to migrate it.")


def _known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
