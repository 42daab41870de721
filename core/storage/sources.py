"""Source records: one row per ingested URL or file, in the `sources` table of the relational database, beside
the keyword rows (core/storage/models.py).

Living in the same database lets a source's keyword rows, the removal of its stale chunks and its "done"
record commit in one transaction, after its vectors are in Chroma: a crash before that commit leaves the old
record (or none), so the next run redoes the source; a crash after it leaves nothing to redo.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.storage.corpus import bump_corpus
from core.storage.models import sources


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
    `last_error` is why the latest attempt failed (None: it succeeded); `report` is the extraction report
    (ingest/report.py) of the stored version, or of the failed attempt when none is stored.
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
    report: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


_COLUMNS = tuple(f.name for f in fields(SourceRecord))
_SELECTED = tuple(sources.c[name] for name in _COLUMNS)


def _row(record: SourceRecord) -> dict[str, Any]:
    """A record as the table's columns (the report as JSON text)."""
    row = record.to_dict()
    row["report"] = json.dumps(record.report, ensure_ascii=False) if record.report is not None else None
    return row


def _record(row: Any) -> SourceRecord:
    """A record from a selected row of `_SELECTED`."""
    values = dict(zip(_COLUMNS, row, strict=True))
    values["report"] = json.loads(values["report"]) if values["report"] else None
    return SourceRecord(**values)


class SourceCatalog:
    """Reads and writes source records; writes that must be atomic with chunk rows take the caller's
    connection (`KeywordIndex.transaction()`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def put(connection: Connection, record: SourceRecord) -> None:
        """Insert or replace a record, inside the caller's transaction."""
        insert = _insert(connection)
        connection.execute(
            insert.values(_row(record)).on_conflict_do_update(
                index_elements=[sources.c.collection, sources.c.id],
                set_={name: insert.excluded[name] for name in _COLUMNS if name not in ("collection", "id")},
            )
        )

    @staticmethod
    def delete(connection: Connection, collection: str, ids: list[str]) -> None:
        """Remove records, inside the caller's transaction."""
        if ids:
            connection.execute(
                delete(sources).where(sources.c.collection == collection, sources.c.id.in_(ids))
            )

    def record_failure(
        self,
        collection: str,
        uri: str,
        error: str,
        embedding_model: str,
        report: dict[str, Any] | None = None,
    ) -> None:
        """Note why the latest attempt at a source failed; a stored earlier version stays as it was (its
        report too). `report`: what the failed attempt read, kept when no version is stored."""
        record = SourceRecord(
            collection, source_id(uri), uri, None, "", "", 0, 0, embedding_model, "", None, error, report
        )
        with self._engine.begin() as connection:
            # One statement, so two replicas failing on the same new source cannot both insert it.
            insert = _insert(connection)
            never_stored = sources.c.content_hash.is_(None)
            connection.execute(
                insert.values(_row(record)).on_conflict_do_update(
                    index_elements=[sources.c.collection, sources.c.id],
                    set_={
                        "last_error": insert.excluded.last_error,
                        "report": case((never_stored, insert.excluded.report), else_=sources.c.report),
                    },
                )
            )

    def clear_error(self, collection: str, record_id: str) -> None:
        """The latest attempt found the stored version unchanged: it no longer failed."""
        with self._engine.begin() as connection:
            connection.execute(
                update(sources)
                .where(sources.c.collection == collection, sources.c.id == record_id)
                .values(last_error=None)
            )

    def forget_failed(self, collection: str, uri: str) -> None:
        """Drop a source's record if it holds only failed attempts (no stored version)."""
        with self._engine.begin() as connection:
            connection.execute(
                delete(sources).where(
                    sources.c.collection == collection,
                    sources.c.id == source_id(uri),
                    sources.c.content_hash.is_(None),
                )
            )

    def get(self, collection: str, record_id: str) -> SourceRecord | None:
        """One record by id, or None."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(*_SELECTED).where(sources.c.collection == collection, sources.c.id == record_id)
            ).first()
        return _record(row) if row else None

    def by_uri(self, collection: str, uri: str) -> SourceRecord | None:
        """The record of a URI, or None."""
        return self.get(collection, source_id(uri))

    def with_content(self, collection: str, digest: str) -> list[SourceRecord]:
        """The records whose stored version has these bytes (`content_hash`), by URI."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(*_SELECTED)
                .where(sources.c.collection == collection, sources.c.content_hash == digest)
                .order_by(sources.c.uri)
            ).all()
        return [_record(row) for row in rows]

    def list(self, collection: str) -> list[SourceRecord]:
        """Every record of a collection, by URI."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(*_SELECTED).where(sources.c.collection == collection).order_by(sources.c.uri)
            ).all()
        return [_record(row) for row in rows]

    def collections(self) -> dict[str, int]:
        """Every collection that has source records (stored names), with how many."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(sources.c.collection, func.count()).group_by(sources.c.collection)
            ).all()
        return {str(name): int(count) for name, count in rows}

    def set_embedding_model(self, collection: str, model_id: str) -> None:
        """After a re-embedding: every source of the collection is now embedded with `model_id` (a change of
        the corpus: its version is bumped)."""
        with self._engine.begin() as connection:
            connection.execute(
                update(sources).where(sources.c.collection == collection).values(embedding_model=model_id)
            )
            bump_corpus(connection, collection)

    def close(self) -> None:
        """Nothing to close: the Engine belongs to the composition root (core.services.Services)."""


def _insert(connection: Connection) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `sources` that can say ON CONFLICT (both dialects spell it the same)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(sources)
    return sqlite.insert(sources)


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
