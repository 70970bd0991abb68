"""Alembic environment for Shiren. Run through `db.migrate` (or `shiren db upgrade`), not the alembic CLI.

`db.migrate` hands over an open connection (config.attributes["connection"]) inside a transaction;
without one, an engine is made from the config's sqlalchemy.url with `db.engine.make_engine`.
"""

from __future__ import annotations

from alembic import context

from db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kw: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: rebuild tables in batch mode
        compare_type=True,
        **kw,
    )


def run_migrations_offline() -> None:
    _configure(
        url=config.get_main_option("sqlalchemy.url"), literal_binds=True, dialect_opts={"paramstyle": "named"}
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
        return

    from db.engine import make_engine, write_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with write_engine(engine).connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
