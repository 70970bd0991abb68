"""Shared fixtures for the db tests: `db_url` and `store`, each run on SQLite and on PostgreSQL.

Use with `from db_fixtures import *` in a tests/test_db_*.py module.

PostgreSQL runs only when SHIREN_TEST_POSTGRES_URL is set (`source .ci/postgres.sh` sets it); each
test gets a fresh database of its own, created next to that one and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from core.types import Poem, PoemRequest
from db.store import Store

__all__ = ["POSTGRES_ENV", "db_url", "make_poems", "make_request", "pg_admin_url", "store"]

POSTGRES_ENV = "SHIREN_TEST_POSTGRES_URL"
_SKIP_REASON = f"PostgreSQL tests need {POSTGRES_ENV} (run `source .ci/postgres.sh` first)"


def pg_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def _psycopg_conninfo(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _fresh_pg_database(admin_url: str) -> tuple[str, str]:
    """Create an empty database; return (its SQLAlchemy URL, its name)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"shiren_t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_psycopg_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, name


def _drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_psycopg_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A URL of an empty database: SQLite in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shiren.db'}"
        return
    admin = pg_admin_url()
    if admin is None:
        pytest.skip(_SKIP_REASON)
    url, name = _fresh_pg_database(admin)
    try:
        yield url
    finally:
        _drop_pg_database(admin, name)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    try:
        yield s
    finally:
        s.close()


def make_request(**kw) -> PoemRequest:
    base = dict(form="七绝", title="春望", keywords=("春", "花"), n=2, temperature=0.7, top_p=0.9, seed=42)
    base.update(kw)
    return PoemRequest(**base)


def make_poems(n: int = 2, *, form: str = "七绝", title: str = "春望", prefix: str = "") -> list[Poem]:
    return [
        Poem(
            text=f"{prefix}春风{i}度玉门关\n黄河远上白云间\n一片孤城万仞山\n羌笛何须怨杨柳",
            form=form,
            title=title,
            logprob=-1.5 - i,
            scores={"format": True, "rhyme": i % 2 == 0, "tone_relaxed": True},
            model_version="base-v1",
        )
        for i in range(n)
    ]
