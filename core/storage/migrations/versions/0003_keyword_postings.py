"""PostgreSQL's BM25 reads an inverted index instead of unnesting every matching chunk's tsvector.

`keyword_postings` holds one row per (collection, lexeme, chunk): the lexeme's count in the chunk and the
chunk's length; `keyword_stats` holds each collection's chunk count and total length. A trigger on
`keyword_chunks` keeps both in step with every insert, update and delete, in the writer's transaction. SQLite
is untouched (its FTS5 tables are its inverted index).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SYNC = """
CREATE FUNCTION keyword_postings_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM keyword_postings WHERE collection = OLD.collection AND chunk_id = OLD.chunk_id;
        UPDATE keyword_stats
           SET documents = documents - 1, total_length = total_length - OLD.doc_len
         WHERE collection = OLD.collection;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO keyword_postings (collection, term, chunk_id, frequency, doc_len)
        SELECT NEW.collection, u.lexeme, NEW.chunk_id, cardinality(u.positions), NEW.doc_len
          FROM unnest(NEW.tsv) AS u;
        INSERT INTO keyword_stats (collection, documents, total_length)
        VALUES (NEW.collection, 1, NEW.doc_len)
        ON CONFLICT (collection) DO UPDATE
           SET documents = keyword_stats.documents + 1,
               total_length = keyword_stats.total_length + EXCLUDED.total_length;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "keyword_postings",
        sa.Column("collection", sa.Text, nullable=False),
        sa.Column("term", sa.Text, nullable=False),
        sa.Column("chunk_id", sa.Text, nullable=False),
        sa.Column("frequency", sa.Integer, nullable=False),
        sa.Column("doc_len", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("collection", "term", "chunk_id"),
    )
    op.create_index("keyword_postings_chunk", "keyword_postings", ["collection", "chunk_id"])
    op.create_table(
        "keyword_stats",
        sa.Column("collection", sa.Text, primary_key=True),
        sa.Column("documents", sa.BigInteger, nullable=False),
        sa.Column("total_length", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO keyword_postings (collection, term, chunk_id, frequency, doc_len)"
        " SELECT k.collection, u.lexeme, k.chunk_id, cardinality(u.positions), k.doc_len"
        " FROM keyword_chunks k CROSS JOIN LATERAL unnest(k.tsv) AS u"
    )
    op.execute(
        "INSERT INTO keyword_stats (collection, documents, total_length)"
        " SELECT collection, count(*), coalesce(sum(doc_len), 0) FROM keyword_chunks GROUP BY collection"
    )
    op.execute(_SYNC)
    op.execute(
        "CREATE TRIGGER keyword_postings_sync AFTER INSERT OR UPDATE OR DELETE ON keyword_chunks"
        " FOR EACH ROW EXECUTE FUNCTION keyword_postings_sync()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER keyword_postings_sync ON keyword_chunks")
    op.execute("DROP FUNCTION keyword_postings_sync()")
    op.drop_table("keyword_stats")
    op.drop_index("keyword_postings_chunk", table_name="keyword_postings")
    op.drop_table("keyword_postings")
