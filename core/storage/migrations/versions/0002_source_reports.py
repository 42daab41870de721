"""Each source record keeps the extraction report of its stored version (pages, characters per page, pages
with no text, pages OCR'd, tables found), as JSON text; an index finds a source by its content hash (the
same document under another URI is not stored twice).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("report", sa.Text))
    op.create_index("sources_content", "sources", ["collection", "content_hash"])


def downgrade() -> None:
    op.drop_index("sources_content", table_name="sources")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("report")
