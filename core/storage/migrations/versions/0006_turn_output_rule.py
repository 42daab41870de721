"""Each turn record keeps the output rule that changed its answer (`output_rule`: a blocked pattern that
withheld it, or the kinds of personal data redacted from it; core/answering/output_guard.py). NULL: no rule
fired (and every row written before).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("turns", sa.Column("output_rule", sa.String))


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("output_rule")
