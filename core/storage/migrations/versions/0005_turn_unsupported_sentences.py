"""Each turn record keeps its answer's `unsupported_sentences` (sentences with a citation that none of their
cited passages supports; core/answering/support.py). Rows written before stay NULL (not checked).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("turns", sa.Column("unsupported_sentences", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("unsupported_sentences")
