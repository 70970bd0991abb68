"""The schema comes from the Alembic migrations, on SQLite and PostgreSQL, and matches the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from db_fixtures import *  # noqa: F403
from sqlalchemy import inspect

from db import migrate
from db.engine import default_url, make_engine, normalize_url
from db.migrate import SchemaError
from db.models import Base
from db.store import ForbiddenError, Store

TABLES = {"users", "requests", "poems", "ratings", "adapters", "training_runs", "bot_state", "bot_leases"}


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_creates_schema_matching_models_and_downgrade_roundtrips(db_url):
    engine = make_engine(db_url)
    try:
        assert migrate.current_revision(engine) is None
        assert migrate.upgrade(engine) == migrate.head_revision() == "0004"
        assert _tables(engine) == TABLES
        insp = inspect(engine)
        assert {tuple(u["column_names"]) for u in insp.get_unique_constraints("ratings")} == {
            ("user_id", "poem_id")
        }
        assert {fk["name"] for fk in insp.get_foreign_keys("ratings")} == {
            "fk_ratings_user_id_users",
            "fk_ratings_poem_id_poems",
        }
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], f"models and migrations disagree: {diff}"

        assert migrate.downgrade(engine, "base") is None
        assert _tables(engine) == set()
        assert migrate.upgrade(engine) == "0004"
        assert _tables(engine) == TABLES
        assert migrate.upgrade(engine) == "0004"  # idempotent
    finally:
        engine.dispose()


def test_0002_adds_card_default_keeping_users_and_their_poems(db_url):
    """0001 → 0002 on a database with data: users keep everything and get card_default false;
    the setting round-trips; 0002 → 0001 drops only the column."""
    engine = make_engine(db_url)
    try:
        assert migrate.upgrade(engine, "0001") == "0001"
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO users (source, external_id, display_name, created, default_form, script, lang) "
                "VALUES ('telegram', '42', 'x', '2026-01-01 00:00:00', '五律', 'traditional', 'en')")
        assert migrate.upgrade(engine) == "0004"
        with Store(db_url, upgrade=False) as store:
            uid = store.ensure_user("telegram", "42")
            st = store.get_settings(uid)
            assert (st.default_form, st.script, st.lang, st.card_default) == ("五律", "traditional", "en", False)
            store.record_poems(uid, make_request(), make_poems(1))  # noqa: F405
            assert store.update_settings(uid, card_default=True).card_default is True
            assert store.get_settings(uid).card_default is True
            assert store.export_user(uid)["user"]["settings"]["card_default"] is True
            new = store.ensure_user("tui", "me")
            assert store.get_settings(new).card_default is False
            with pytest.raises(ValueError, match="card_default"):
                store.update_settings(uid, card_default="yes")
        assert migrate.downgrade(engine, "0001") == "0001"  # through 0003 → 0002 → 0001
        cols = {c["name"] for c in inspect(engine).get_columns("users")}
        assert "card_default" not in cols and "default_form" in cols
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM poems").scalar() == 1
            assert conn.exec_driver_sql("SELECT script FROM users WHERE external_id = '42'").scalar() == "traditional"
    finally:
        engine.dispose()


def test_0003_links_revisions_keeping_poems(db_url):
    """0002 → 0003 on a database with poems: they stay, as originals; a revision links to its poem,
    survives the poem's deletion (link set to NULL); 0003 → 0002 drops only the column."""
    engine = make_engine(db_url)
    try:
        assert migrate.upgrade(engine, "0002") == "0002"
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO users (source, external_id, display_name, created, default_form, script, lang, card_default) "
                "VALUES ('telegram', '7', 'x', '2026-01-01 00:00:00', '七绝', 'simplified', 'zh', false)")
        assert migrate.upgrade(engine) == "0004"
        with Store(db_url, upgrade=False) as store:
            uid = store.ensure_user("telegram", "7")
            (pid,) = store.record_poems(uid, make_request(), make_poems(1))  # noqa: F405
            assert store.get_poem(pid).revised_from is None
            rev = store.record_revision(uid, pid, make_poems(1)[0])  # noqa: F405
            assert store.get_poem(rev).revised_from == pid and store.revisions(pid) == [rev]
            assert store.get_poem(rev).request == store.get_poem(pid).request
            other = store.ensure_user("tui", "someone")
            with pytest.raises(ForbiddenError):
                store.record_revision(other, pid, make_poems(1)[0])  # noqa: F405
            store.rate(uid, rev, 5)
            assert store.delete_poem(uid, pid)
            assert store.get_poem(rev).revised_from is None and store.get_poem(rev).rating == 5
        assert migrate.downgrade(engine, "0002") == "0002"
        cols = {c["name"] for c in inspect(engine).get_columns("poems")}
        assert "revised_from" not in cols and "text" in cols
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM poems").scalar() == 1
    finally:
        engine.dispose()


def test_0004_adds_bot_state_and_leases_keeping_data(db_url):
    """0003 → 0004 on a database with a user and a poem: both stay; bot state is per user and goes
    with /forget (cascade); leases work; 0004 → 0003 drops only the two new tables."""
    engine = make_engine(db_url)
    try:
        assert migrate.upgrade(engine, "0003") == "0003"
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO users (source, external_id, display_name, created, default_form, script, lang, card_default) "
                "VALUES ('telegram', '9', 'x', '2026-01-01 00:00:00', '七绝', 'simplified', 'zh', false), "
                "('telegram', '10', 'y', '2026-01-01 00:00:00', '七绝', 'simplified', 'zh', false)")
        assert migrate.upgrade(engine) == "0004"
        with Store(db_url, upgrade=False) as store:
            uid = store.ensure_user("telegram", "9")
            (pid,) = store.record_poems(uid, make_request(), make_poems(1))  # noqa: F405
            store.put_state(uid, "history", {"search": "春"})
            assert store.get_state(uid, "history") == {"search": "春"}
            assert store.acquire_lease("feedback-leader", "w1", 30)
            assert store.forget_user(uid) and store.get_poem(pid) is None
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM bot_state").scalar() == 0
        assert migrate.downgrade(engine, "0003") == "0003"
        assert _tables(engine) == TABLES - {"bot_state", "bot_leases"}
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM users").scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_pragmas_wal_foreign_keys_busy_timeout(tmp_path):
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_refuses_outdated_schema_naming_the_command(db_url):
    with pytest.raises(SchemaError) as err:
        Store(db_url, upgrade=False)
    assert "shiren db upgrade" in str(err.value)
    with Store(db_url, upgrade=True) as store:
        assert store.stats()["users"] == 0
    with Store(db_url, upgrade=False) as store:  # now at head: fine
        assert store.stats()["poems"] == 0


def test_refuses_unknown_revision(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url).close()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(SchemaError, match="shiren db upgrade"):
        Store(url, upgrade=False)


def test_default_url_and_postgres_driver(monkeypatch, tmp_path):
    monkeypatch.delenv("SHIREN_DATABASE_URL", raising=False)
    monkeypatch.setenv("SHIREN_HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'shiren.db'}"
    with Store() as store:
        assert store.url.endswith("home/shiren.db")
    assert (tmp_path / "home" / "shiren.db").exists()
    monkeypatch.setenv("SHIREN_DATABASE_URL", "postgres://u:secret@h/db")
    u = normalize_url(None)
    assert u.drivername == "postgresql+psycopg"
    assert "secret" not in make_engine(None).url.render_as_string()
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        normalize_url("mysql://u@h/db")


def test_cli_upgrade_current_export_forget(tmp_path):
    import json

    from typer.testing import CliRunner

    from db.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    r = runner.invoke(app, ["current", "--url", url])
    assert r.exit_code == 1 and "shiren db upgrade" in r.output
    r = runner.invoke(app, ["upgrade", "--url", url])
    assert r.exit_code == 0 and "0004" in r.output
    r = runner.invoke(app, ["current", "--url", url])
    assert r.exit_code == 0 and "revision 0004" in r.output

    with Store(url) as store:
        uid = store.ensure_user("cli", "me", "我")
        store.record_poems(uid, make_request(), make_poems(1))  # noqa: F405
    r = runner.invoke(app, ["export", "--url", url, "--user-id", str(uid)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["user"]["display_name"] == "我"
    r = runner.invoke(app, ["forget", "--url", url, "--user-id", str(uid)], input="n\n")
    assert r.exit_code != 0
    r = runner.invoke(app, ["forget", "--url", url, "--user-id", str(uid), "--yes"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["export", "--url", url, "--user-id", str(uid)])
    assert r.exit_code == 1 and "No user" in r.output
