"""Source records: one row per ingested URL or file, kept in the keyword index's SQLite file.

Living in the same file lets a source's keyword rows, the removal of its stale chunks and its "done" record
commit in one transaction, after its vectors are in Chroma: a crash before that commit leaves the old record
(or none), so the next run redoes the source; a crash after it leaves nothing to redo.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.retrieval.keyword_index import KeywordIndex

_COLUMNS = (
    "collection",
    "id",
    "uri",
    "content_hash",
    "title",
    "kind",
    "pages",
    "chunks",
    "embedding_model",
    "chunking",
    "ingested_at",
    "last_error",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    collection TEXT NOT NULL, id TEXT NOT NULL, uri TEXT NOT NULL, content_hash TEXT, title TEXT NOT NULL,
    kind TEXT NOT NULL, pages INTEGER NOT NULL, chunks INTEGER NOT NULL, embedding_model TEXT NOT NULL,
    chunking TEXT NOT NULL, ingested_at TEXT, last_error TEXT, PRIMARY KEY (collection, id))
"""


def source_id(uri: str) -> str:
    """A short stable id for a source, derived from its URI."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]


def content_hash(data: bytes) -> str:
    """The hash of a source's raw bytes, compared before anything is parsed."""
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    """ISO-8601 UTC timestamp, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class SourceRecord:
    """What Docent knows about one ingested source in one collection.

    `content_hash` is that of the last version whose chunks are all stored (None: never ingested);
    `last_error` is why the latest attempt failed (None: it succeeded).
    """

    collection: str
    id: str
    uri: str
    content_hash: str | None
    title: str
    kind: str
    pages: int
    chunks: int
    embedding_model: str
    chunking: str
    ingested_at: str | None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class SourceCatalog:
    """Reads and writes source records; writes that must be atomic with chunk rows take a transaction."""

    def __init__(self, index: KeywordIndex) -> None:
        self._index = index
        with index.transaction() as tx:
            tx.connection.execute(_SCHEMA)

    @staticmethod
    def put(connection: sqlite3.Connection, record: SourceRecord) -> None:
        """Insert or replace a record, inside the caller's transaction."""
        values = tuple(getattr(record, column) for column in _COLUMNS)
        marks = ",".join("?" * len(_COLUMNS))
        connection.execute(f"INSERT OR REPLACE INTO sources ({','.join(_COLUMNS)}) VALUES ({marks})", values)

    @staticmethod
    def delete(connection: sqlite3.Connection, collection: str, ids: list[str]) -> None:
        """Remove records, inside the caller's transaction."""
        connection.executemany(
            "DELETE FROM sources WHERE collection = ? AND id = ?", [(collection, i) for i in ids]
        )

    def record_failure(self, collection: str, uri: str, error: str, embedding_model: str) -> None:
        """Note why the latest attempt at a source failed; a stored earlier version stays as it was."""
        with self._index.transaction() as tx:
            known = tx.connection.execute(
                "UPDATE sources SET last_error = ? WHERE collection = ? AND id = ?",
                (error, collection, source_id(uri)),
            ).rowcount
            if not known:
                self.put(
                    tx.connection,
                    SourceRecord(
                        collection, source_id(uri), uri, None, "", "", 0, 0, embedding_model, "", None, error
                    ),
                )

    def clear_error(self, collection: str, record_id: str) -> None:
        """The latest attempt found the stored version unchanged: it no longer failed."""
        with self._index.transaction() as tx:
            tx.connection.execute(
                "UPDATE sources SET last_error = NULL WHERE collection = ? AND id = ?",
                (collection, record_id),
            )

    def get(self, collection: str, record_id: str) -> SourceRecord | None:
        """One record by id, or None."""
        with self._index.reading() as connection:
            row = connection.execute(
                f"SELECT {','.join(_COLUMNS)} FROM sources WHERE collection = ? AND id = ?",
                (collection, record_id),
            ).fetchone()
        return SourceRecord(*row) if row else None

    def by_uri(self, collection: str, uri: str) -> SourceRecord | None:
        """The record of a URI, or None."""
        return self.get(collection, source_id(uri))

    def list(self, collection: str) -> list[SourceRecord]:
        """Every record of a collection, by URI."""
        with self._index.reading() as connection:
            rows = connection.execute(
                f"SELECT {','.join(_COLUMNS)} FROM sources WHERE collection = ? ORDER BY uri", (collection,)
            ).fetchall()
        return [SourceRecord(*row) for row in rows]

    def collections(self) -> dict[str, int]:
        """Every collection that has source records (stored names), with how many."""
        with self._index.reading() as connection:
            rows = connection.execute(
                "SELECT collection, count(*) FROM sources GROUP BY collection"
            ).fetchall()
        return {str(name): int(count) for name, count in rows}

    def set_embedding_model(self, collection: str, model_id: str) -> None:
        """After a re-embedding: every source of the collection is now embedded with `model_id`."""
        with self._index.transaction() as tx:
            tx.connection.execute(
                "UPDATE sources SET embedding_model = ? WHERE collection = ?", (model_id, collection)
            )


@lru_cache(maxsize=4096)
def shown_uri(uri: str, data_dir: Path) -> str:
    """How a source is shown in answers, citations and listings: a URL as it is; a file by a path that tells
    nothing of the server's disk (an upload by its path inside the data dir, another file by its path inside
    the server's working directory, or else its name). The stored URI stays the source's identity."""
    if "://" in uri:
        return uri
    path = Path(uri)
    if not path.is_absolute():
        return uri
    for base in (data_dir.resolve(), Path.cwd()):
        if path.is_relative_to(base):
            return str(path.relative_to(base))
    return path.name
