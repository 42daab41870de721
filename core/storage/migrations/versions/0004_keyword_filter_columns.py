"""Keyword rows carry what metadata filters read (core/retrieval/filters.py), as each chunk's Chroma metadata
does: title, kind, section, page, the source's file name and stem, and its time of ingest (epoch seconds).
Rows written before stay NULL there (a filter on those fields does not match them) until their source is
ingested again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("title", sa.Text),
    ("kind", sa.Text),
    ("section", sa.Text),
    ("page", sa.Integer),
    ("source_name", sa.Text),
    ("source_stem", sa.Text),
    ("ingested_at", sa.BigInteger),
)


def upgrade() -> None:
    # ALTER TABLE ADD COLUMN on both engines: SQLite keeps every rowid, which its FTS5 tables point at.
    for name, kind in _COLUMNS:
        op.add_column("keyword_chunks", sa.Column(name, kind))


def downgrade() -> None:
    # Not batch mode: SQLite's native DROP COLUMN (3.35+) keeps the rowids; copying the table would not.
    for name, _ in reversed(_COLUMNS):
        op.execute(f"ALTER TABLE keyword_chunks DROP COLUMN {name}")
