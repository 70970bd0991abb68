"""The database schema as SQLAlchemy 2.x typed models.

The schema itself is created and changed only by the Alembic migrations in `db/migrations/`
(`db.migrate.upgrade`); these models describe it for queries. A test checks the two agree.

Deleting a user cascades in the database (ON DELETE CASCADE) to their requests, poems and ratings,
so forgotten users vanish from training data too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Every constraint and index gets a predictable name, so migrations (batch mode on SQLite
# included) can find and change them later.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER_SOURCES: tuple[str, ...] = ("telegram", "tui", "cli")
SCRIPTS: tuple[str, ...] = ("simplified", "traditional")
ADAPTER_STATUSES: tuple[str, ...] = ("candidate", "active", "retired")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so the value is stored as naive UTC
    and given its UTC tzinfo back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint(_in("source", USER_SOURCES), name="source"),
        CheckConstraint(_in("script", SCRIPTS), name="script"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(256), default="")
    created: Mapped[datetime] = mapped_column(default=utcnow)
    # Settings (the bot's /settings).
    default_form: Mapped[str] = mapped_column(String(16), default="七绝")
    script: Mapped[str] = mapped_column(String(16), default="simplified")
    lang: Mapped[str] = mapped_column(String(16), default="zh")
    # Send poems as picture cards by default (migration 0002).
    card_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Request(Base):
    """One request to the poet, as normalised (`core.types.PoemRequest`)."""

    __tablename__ = "requests"
    __table_args__ = (Index(None, "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    form: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(256), default="")
    keywords: Mapped[list[str]] = mapped_column(default=list)
    acrostic: Mapped[str] = mapped_column(String(64), default="")
    first_line: Mapped[str] = mapped_column(String(256), default="")
    cipai: Mapped[str] = mapped_column(String(64), default="")
    n: Mapped[int] = mapped_column(Integer, default=1)
    temperature: Mapped[float] = mapped_column(Float)
    top_p: Mapped[float] = mapped_column(Float)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Poem(Base):
    __tablename__ = "poems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    form: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(256), default="")
    cipai: Mapped[str] = mapped_column(String(64), default="")
    model_version: Mapped[str] = mapped_column(String(128), default="")
    # The adapter's name (not a foreign key: poems outlive adapters that are cleaned up).
    adapter_version: Mapped[str | None] = mapped_column(String(128))
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    logprob: Mapped[float] = mapped_column(Float, default=0.0)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    # A revision (a line or a character rewritten on request) names the poem it came from.
    revised_from: Mapped[int | None] = mapped_column(ForeignKey("poems.id", ondelete="SET NULL"), index=True)


class Rating(Base):
    """1–5 stars; one per user per poem (re-rating updates the row)."""

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("user_id", "poem_id"),
        CheckConstraint("stars BETWEEN 1 AND 5", name="stars"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    poem_id: Mapped[int] = mapped_column(ForeignKey("poems.id", ondelete="CASCADE"), index=True)
    stars: Mapped[int] = mapped_column(SmallInteger)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)


class Adapter(Base):
    """A LoRA adapter version. At most one is `active` (a partial unique index enforces it)."""

    __tablename__ = "adapters"
    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint(_in("status", ADAPTER_STATUSES), name="status"),
        Index(
            "uq_adapters_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    # The name of the adapter it was trained from (None: the base model).
    parent: Mapped[str | None] = mapped_column(String(128))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    created: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    started: Mapped[datetime] = mapped_column(default=utcnow)
    finished: Mapped[datetime | None] = mapped_column()
    data_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # "running" until finish_run; then what the caller says ("promoted", "rejected", "failed", ...).
    outcome: Mapped[str] = mapped_column(String(32), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    # The name of the adapter the run produced, if any.
    adapter: Mapped[str | None] = mapped_column(String(128))


class BotState(Base):
    """Small per-user state of the bot that must outlive one worker (migration 0004): a /poem picker's
    topics, the /forget confirmation, the /history search, the rate-limit bucket. Expired rows are
    treated as absent."""

    __tablename__ = "bot_state"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column()
    expires: Mapped[datetime | None] = mapped_column()


class BotLease(Base):
    """A named lease (migration 0004): the feedback leader, a worker's heartbeat, a generation in
    flight, a request being answered. Held by `holder` until `expires` unless renewed."""

    __tablename__ = "bot_leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires: Mapped[datetime] = mapped_column(index=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
