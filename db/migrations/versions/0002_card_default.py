"""users.card_default: send poems as picture cards by default (the bot's /settings).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Written by hand. A NOT NULL boolean with a server default (false), so existing users keep text
messages; batch mode rebuilds the table on SQLite (which cannot drop a column in place on older
versions) and is a plain ALTER TABLE on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("card_default", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("card_default")
