"""poems.revised_from: a revision (one line or one character rewritten on request) links to its poem.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Written by hand. A nullable self-reference: existing poems are originals (NULL). ON DELETE SET NULL,
so deleting a poem keeps its revisions (and their ratings, which train the models) as originals.
Batch mode rebuilds the table on SQLite, which cannot add a foreign key in place; on PostgreSQL it
is a plain ALTER TABLE.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("poems") as batch:
        batch.add_column(sa.Column("revised_from", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_poems_revised_from_poems", "poems", ["revised_from"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_poems_revised_from", ["revised_from"])


def downgrade() -> None:
    with op.batch_alter_table("poems") as batch:
        batch.drop_index("ix_poems_revised_from")
        batch.drop_constraint("fk_poems_revised_from_poems", type_="foreignkey")
        batch.drop_column("revised_from")
