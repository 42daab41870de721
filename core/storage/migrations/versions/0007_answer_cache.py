"""The answer cache (core/answering/cache.py): `corpus_versions`, a counter per stored collection that every
ingest, reindex and source removal bumps in the transaction that commits it, so a cached answer of an older
corpus is never served, whichever process changed the corpus; and `turns.cached`, true for a turn served from
the cache, false for one the graph answered (NULL: every row written before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corpus_versions",
        sa.Column("collection", sa.Text, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("changed_at", sa.Text, nullable=False),
    )
    op.add_column("turns", sa.Column("cached", sa.Boolean))


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("cached")
    op.drop_table("corpus_versions")
