"""The first schema: threads, turns, sources, API keys, ingest jobs, idempotency keys and keyword rows.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("workspace", sa.Text, nullable=False, server_default="default"),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_index("threads_owner", "threads", ["owner", "workspace"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("thread_id", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("citations", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("usage_estimated", sa.Boolean),
        sa.Column("cost_usd", sa.Float),
        sa.Column("degraded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("degraded_reason", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
    )
    op.create_index("turns_thread", "turns", ["thread_id", "id"])
    op.create_index("turns_run", "turns", ["run_id"])
    op.create_table(
        "sources",
        sa.Column("collection", sa.Text, nullable=False),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("content_hash", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("pages", sa.Integer, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("embedding_model", sa.Text, nullable=False),
        sa.Column("chunking", sa.Text, nullable=False),
        sa.Column("ingested_at", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("collection", "id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("sha256", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("workspace", sa.Text, nullable=False, server_default="default"),
        sa.Column("created_at", sa.Text),
        sa.UniqueConstraint("name", name="api_keys_name"),
    )
    op.create_table(
        "ingest_jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("collection", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total", sa.Integer),
        sa.Column("current", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("results", sa.Text, nullable=False, server_default="[]"),
        sa.Column("summary", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("finished_at", sa.Text),
    )
    op.create_index("ingest_jobs_collection", "ingest_jobs", ["collection", "status"])
    unfinished = sa.text("status IN ('queued', 'running')")
    op.create_index(
        "ingest_jobs_one_unfinished",
        "ingest_jobs",
        ["collection"],
        unique=True,
        sqlite_where=unfinished,
        postgresql_where=unfinished,
    )
    op.create_table(
        "ingest_uploads",
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "name"),
    )
    op.create_table(
        "idempotency",
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("route", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("status_code", sa.Integer),
        sa.Column("response", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("owner", "route", "key"),
    )
    op.create_table(
        "keyword_chunks",
        sa.Column("collection", sa.Text, nullable=False),
        sa.Column("chunk_id", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("collection", "chunk_id"),
    )
    op.create_index("keyword_chunks_source", "keyword_chunks", ["collection", "source"])
    if op.get_bind().dialect.name == "postgresql":
        # Full-text search (core/retrieval/keyword_index.py): each chunk's lexemes and their count, kept by
        # PostgreSQL itself; SQLite's FTS5 tables are made per collection at run time instead.
        op.execute(
            "ALTER TABLE keyword_chunks ADD COLUMN tsv tsvector"
            " GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute(
            "ALTER TABLE keyword_chunks ADD COLUMN doc_len integer"
            " GENERATED ALWAYS AS (cardinality(regexp_split_to_array(text, '\\W+'))) STORED"
        )
        op.create_index("keyword_chunks_tsv", "keyword_chunks", ["tsv"], postgresql_using="gin")


def downgrade() -> None:
    for index, table in (
        ("keyword_chunks_source", "keyword_chunks"),
        ("ingest_jobs_one_unfinished", "ingest_jobs"),
        ("ingest_jobs_collection", "ingest_jobs"),
        ("turns_run", "turns"),
        ("turns_thread", "turns"),
        ("threads_owner", "threads"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "keyword_chunks",
        "idempotency",
        "ingest_uploads",
        "ingest_jobs",
        "api_keys",
        "sources",
        "turns",
        "threads",
    ):
        op.drop_table(table)
