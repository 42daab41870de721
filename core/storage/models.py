"""The relational schema, one SQLAlchemy Core table per kind of row: the embedded SQLite file and the
server-mode PostgreSQL database hold the same tables, made and changed only by the Alembic migrations in
`core/storage/migrations` (`docent db upgrade`).

Times are ISO-8601 UTC strings (they sort as they read); lists and mappings are JSON text.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

metadata = MetaData()

threads = Table(
    "threads",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("workspace", Text, nullable=False, server_default="default"),
    Column("created_at", Text, nullable=False),
    Index("threads_owner", "owner", "workspace"),
)

turns = Table(
    "turns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("thread_id", Text, nullable=False),
    Column("run_id", Text),
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("citations", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("usage_estimated", Boolean),
    Column("cost_usd", Float),
    Column("degraded", Boolean, nullable=False, server_default=false()),
    Column("degraded_reason", Text),
    Column("created_at", Text, nullable=False),
    Column("unsupported_sentences", Integer),  # migration 0005; NULL: not checked
    Column("output_rule", Text),  # migration 0006; NULL: no output rule changed the answer
    Column("cached", Boolean),  # migration 0007; true: served from the answer cache; NULL: written before
    Index("turns_thread", "thread_id", "id"),
    Index("turns_run", "run_id"),
)

sources = Table(
    "sources",
    metadata,
    Column("collection", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("uri", Text, nullable=False),
    Column("content_hash", Text),
    Column("title", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("pages", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("embedding_model", Text, nullable=False),
    Column("chunking", Text, nullable=False),
    Column("ingested_at", Text),
    Column("last_error", Text),
    Column("report", Text),
    PrimaryKeyConstraint("collection", "id"),
    Index("sources_content", "collection", "content_hash"),
)
"""One row per ingested source; `report` is its extraction report (JSON: ingest/report.py), null before
revision 0002 and for sources never read. `sources_content` finds another URI with the same bytes."""

api_keys = Table(
    "api_keys",
    metadata,
    Column("sha256", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("workspace", Text, nullable=False, server_default="default"),
    Column("created_at", Text),
    UniqueConstraint("name", name="api_keys_name"),
)

ingest_jobs = Table(
    "ingest_jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("collection", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("items", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("cancel_requested", Boolean, nullable=False, server_default=false()),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("total", Integer),
    Column("current", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("results", Text, nullable=False, server_default="[]"),
    Column("summary", Text),
    Column("error", Text),
    Column("started_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("finished_at", Text),
    Index("ingest_jobs_collection", "collection", "status"),
    Index(
        "ingest_jobs_one_unfinished",
        "collection",
        unique=True,
        sqlite_where=text("status IN ('queued', 'running')"),
        postgresql_where=text("status IN ('queued', 'running')"),
    ),
)
"""One unfinished job per collection, enforced by the database whichever replica claims it."""

ingest_uploads = Table(
    "ingest_uploads",
    metadata,
    Column("job_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("job_id", "name"),
)
"""The files uploaded with a job, carried to whichever worker runs it; deleted when the job ends."""

idempotency = Table(
    "idempotency",
    metadata,
    Column("owner", Text, nullable=False),
    Column("route", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("run_id", Text),
    Column("status_code", Integer),
    Column("response", Text),
    Column("created_at", Text, nullable=False),
    PrimaryKeyConstraint("owner", "route", "key"),
)

corpus_versions = Table(
    "corpus_versions",
    metadata,
    Column("collection", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("changed_at", Text, nullable=False),
)
"""A counter per stored collection that every write of its chunks or records bumps in the same transaction
(ingest, reindex, source removal), from whichever process: the answer cache keys on it
(core/storage/corpus.py)."""

keyword_chunks = Table(
    "keyword_chunks",
    metadata,
    Column("collection", Text, nullable=False),
    Column("chunk_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("text", Text, nullable=False),
    # What metadata filters read (core/retrieval/filters.py), as the chunk's Chroma metadata has it; NULL in
    # rows written before migration 0004 until their source is ingested again.
    Column("title", Text),
    Column("kind", Text),
    Column("section", Text),
    Column("page", Integer),
    Column("source_name", Text),
    Column("source_stem", Text),
    Column("ingested_at", BigInteger),  # epoch seconds, as in Chroma, where a filter compares numbers
    PrimaryKeyConstraint("collection", "chunk_id"),
    Index("keyword_chunks_source", "collection", "source"),
)
"""The keyword index's rows (BM25 over them: FTS5 tables in SQLite, a tsvector column with a GIN index in
PostgreSQL; see core/retrieval/keyword_index.py)."""
