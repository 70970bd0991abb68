"""Initial schema: users, requests, poems, ratings, adapters, training runs.

Revision ID: 0001
Revises:
Create Date: 2025-11-29

Written by hand. Every constraint and index is named explicitly, following
db.models.NAMING_CONVENTION, so later (batch) migrations can address them on SQLite and PostgreSQL.
Timestamps are timezone-aware (timestamptz on PostgreSQL; naive UTC text on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        _ts("created"),
        sa.Column("default_form", sa.String(16), nullable=False),
        sa.Column("script", sa.String(16), nullable=False),
        sa.Column("lang", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("source", "external_id", name="uq_users_source_external_id"),
        sa.CheckConstraint("source IN ('telegram', 'tui', 'cli')", name="ck_users_source"),
        sa.CheckConstraint("script IN ('simplified', 'traditional')", name="ck_users_script"),
    )

    op.create_table(
        "requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("form", sa.String(16), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("acrostic", sa.String(64), nullable=False),
        sa.Column("first_line", sa.String(256), nullable=False),
        sa.Column("cipai", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("top_p", sa.Float(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        _ts("created"),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_requests_user_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_requests_user_id_id", "requests", ["user_id", "id"])

    op.create_table(
        "poems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("form", sa.String(16), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("cipai", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("adapter_version", sa.String(128), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("logprob", sa.Float(), nullable=False),
        _ts("created"),
        sa.PrimaryKeyConstraint("id", name="pk_poems"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name="fk_poems_request_id_requests", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_poems_request_id", "poems", ["request_id"])

    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("poem_id", sa.Integer(), nullable=False),
        sa.Column("stars", sa.SmallInteger(), nullable=False),
        _ts("created"),
        _ts("updated"),
        sa.PrimaryKeyConstraint("id", name="pk_ratings"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_ratings_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["poem_id"], ["poems.id"], name="fk_ratings_poem_id_poems", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("user_id", "poem_id", name="uq_ratings_user_id_poem_id"),
        sa.CheckConstraint("stars BETWEEN 1 AND 5", name="ck_ratings_stars"),
    )
    op.create_index("ix_ratings_poem_id", "ratings", ["poem_id"])

    op.create_table(
        "adapters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("parent", sa.String(128), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created"),
        sa.PrimaryKeyConstraint("id", name="pk_adapters"),
        sa.UniqueConstraint("name", name="uq_adapters_name"),
        sa.CheckConstraint("status IN ('candidate', 'active', 'retired')", name="ck_adapters_status"),
    )
    # At most one active adapter.
    op.create_index(
        "uq_adapters_one_active",
        "adapters",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        _ts("started"),
        _ts("finished", nullable=True),
        sa.Column("data_counts", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("adapter", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_training_runs"),
    )


def downgrade() -> None:
    op.drop_table("training_runs")
    op.drop_index("uq_adapters_one_active", table_name="adapters")
    op.drop_table("adapters")
    op.drop_index("ix_ratings_poem_id", table_name="ratings")
    op.drop_table("ratings")
    op.drop_index("ix_poems_request_id", table_name="poems")
    op.drop_table("poems")
    op.drop_index("ix_requests_user_id_id", table_name="requests")
    op.drop_table("requests")
    op.drop_table("users")
