"""BM25 over chunk text: SQLite FTS5 (Porter stemming) in a file beside the Chroma store.

Why not a BM25 library: FTS5 ships inside Python's sqlite3, persists and updates incrementally (add, replace,
remove are single transactions), and ranks with BM25 natively; in-memory BM25 packages must rebuild on change.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from core.text import STOPWORDS

_TOKEN = re.compile(r"\w+")
_BATCH = 500  # ids per SQL statement, below SQLite's variable limit


def match_expression(query: str) -> str:
    """An FTS5 query matching any content word of the text (quoted, so no word is read as an operator)."""
    words = dict.fromkeys(w for w in _TOKEN.findall(query.lower()) if w not in STOPWORDS)
    return " OR ".join(f'"{w}"' for w in words)


class KeywordIndex:
    """One FTS5 table per collection (so BM25's statistics are the collection's own), keyed by chunk id."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._ready: set[str] = set()

    def _table(self, collection: str) -> str:
        """Create the collection's tables once; callers hold the lock."""
        name = "kw_" + hashlib.sha1(collection.encode()).hexdigest()[:16]
        if name not in self._ready:
            # Plain statements, not executescript (which would commit a transaction this runs inside).
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {name}_rows ("
                "rowid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, source TEXT NOT NULL)"
            )
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {name}_source ON {name}_rows (source)")
            self._conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {name}_fts USING fts5("
                "text, tokenize = 'porter unicode61 remove_diacritics 2')"
            )
            self._ready.add(name)
        return name

    @contextmanager
    def transaction(self) -> Iterator[KeywordTransaction]:
        """One SQLite transaction over the file: keyword rows and anything else kept in it commit together."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield KeywordTransaction(self)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._ready.clear()  # tables created inside the transaction are gone too
                raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, for reads by modules that keep their tables in this file."""
        with self._lock:
            yield self._conn

    def upsert(
        self, collection: str, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]
    ) -> None:
        """Index chunks, replacing any with the same id, in one transaction."""
        with self.transaction() as tx:
            tx.upsert(collection, ids, texts, sources)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove chunks by id (unknown ids are ignored)."""
        with self.transaction() as tx:
            tx.delete(collection, ids)

    def _upsert_locked(
        self, collection: str, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]
    ) -> None:
        table = self._table(collection)
        self._delete_locked(table, ids)
        for chunk_id, text, source in zip(ids, texts, sources, strict=True):
            cursor = self._conn.execute(
                f"INSERT INTO {table}_rows (chunk_id, source) VALUES (?, ?)", (chunk_id, source)
            )
            self._conn.execute(
                f"INSERT INTO {table}_fts (rowid, text) VALUES (?, ?)", (cursor.lastrowid, text)
            )

    def _delete_locked(self, table: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _BATCH):
            batch = list(ids[start : start + _BATCH])
            marks = ",".join("?" * len(batch))
            rows = f"SELECT rowid FROM {table}_rows WHERE chunk_id IN ({marks})"
            self._conn.execute(f"DELETE FROM {table}_fts WHERE rowid IN ({rows})", batch)
            self._conn.execute(f"DELETE FROM {table}_rows WHERE chunk_id IN ({marks})", batch)

    def existing_ids(self, collection: str, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids are indexed."""
        found: set[str] = set()
        with self._lock:
            table = self._table(collection)
            for start in range(0, len(ids), _BATCH):
                batch = list(ids[start : start + _BATCH])
                marks = ",".join("?" * len(batch))
                rows = self._conn.execute(
                    f"SELECT chunk_id FROM {table}_rows WHERE chunk_id IN ({marks})", batch
                )
                found.update(r[0] for r in rows)
        return found

    def source_ids(self, collection: str, source: str) -> set[str]:
        """Ids of every indexed chunk of one source."""
        with self._lock:
            table = self._table(collection)
            rows = self._conn.execute(f"SELECT chunk_id FROM {table}_rows WHERE source = ?", (source,))
            return {r[0] for r in rows}

    def search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        """The k best chunks by BM25 as (chunk id, score), best first; higher scores are better."""
        expression = match_expression(query)
        if not expression:
            return []
        with self._lock:
            table = self._table(collection)
            rows = self._conn.execute(
                f"SELECT r.chunk_id, bm25({table}_fts) AS rank FROM {table}_fts"
                f" JOIN {table}_rows r ON r.rowid = {table}_fts.rowid"
                f" WHERE {table}_fts MATCH ? ORDER BY rank LIMIT ?",
                (expression, k),
            ).fetchall()
        return [(chunk_id, -float(rank)) for chunk_id, rank in rows]

    def close(self) -> None:
        """Close the index file."""
        with self._lock:
            self._conn.close()


class KeywordTransaction:
    """Writes inside `KeywordIndex.transaction()`: nothing is visible to readers until the block commits."""

    def __init__(self, index: KeywordIndex) -> None:
        self._index = index

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection the transaction runs on, for tables other modules keep in the same file."""
        return self._index._conn

    def upsert(
        self, collection: str, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]
    ) -> None:
        """Index chunks, replacing any with the same id."""
        self._index._upsert_locked(collection, ids, texts, sources)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove chunks by id."""
        self._index._delete_locked(self._index._table(collection), ids)
