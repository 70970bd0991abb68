"""bot_state and bot_leases: the bot's shared state, so several bot workers can serve one webhook.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Written by hand. Two new tables, nothing existing changes:

- bot_state: small per-user state that used to live in a worker's memory (pending /poem pickers,
  the /forget confirmation, the /history search, the rate-limit bucket, ...), keyed by (user, kind),
  a JSON value and an expiry. ON DELETE CASCADE from users: /forget removes it with the user.
- bot_leases: named rows with a holder and an expiry: the feedback leader's lease, worker
  heartbeats, generations in flight (the global cap) and the journal of requests being answered.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_state",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_bot_state_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "kind", name="pk_bot_state"),
    )
    op.create_table(
        "bot_leases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_bot_leases"),
    )
    with op.batch_alter_table("bot_leases") as batch:
        batch.create_index("ix_bot_leases_expires", ["expires"])


def downgrade() -> None:
    with op.batch_alter_table("bot_leases") as batch:
        batch.drop_index("ix_bot_leases_expires")
    op.drop_table("bot_leases")
    op.drop_table("bot_state")
