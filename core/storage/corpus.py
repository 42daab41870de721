"""Corpus versions: a counter per stored collection, in the `corpus_versions` table of the relational
database, that every write of the collection's chunks or source records bumps inside the transaction that
commits it (ingest, reindex, source removal). Whatever process wrote (a server, `docent ingest` on the same
data dir, a `docent worker`), every reader sees the new version as soon as the chunks are there: the answer
cache (core/answering/cache.py) keys its answers on it, so none outlives the corpus it was answered from.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from core.storage.models import corpus_versions

UNCHANGED = 0
"""The version of a collection nothing has ever been written to (no row)."""


def bump_corpus(connection: Connection, collection: str) -> None:
    """One more change to `collection`, inside the caller's transaction (visible when it commits)."""
    insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
        corpus_versions
    )
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    connection.execute(
        insert.values(collection=collection, version=1, changed_at=now).on_conflict_do_update(
            index_elements=[corpus_versions.c.collection],
            set_={"version": corpus_versions.c.version + 1, "changed_at": now},
        )
    )


class CorpusVersions:
    """Reads a collection's version (one indexed row; blocking: call it from a worker thread)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def current(self, collection: str) -> int:
        """The collection's version: UNCHANGED until its first write, then one more per write."""
        with self._engine.connect() as connection:
            found = connection.execute(
                select(corpus_versions.c.version).where(corpus_versions.c.collection == collection)
            ).scalar()
        return UNCHANGED if found is None else int(found)

    def bump(self, collection: str) -> None:
        """One more change to `collection`, in a transaction of its own (a change made outside one)."""
        with self._engine.begin() as connection:
            bump_corpus(connection, collection)
