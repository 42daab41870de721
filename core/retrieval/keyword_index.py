"""BM25 over chunk text, on the relational database: rows in `keyword_chunks` (core/storage/models.py), ranked
by SQLite FTS5 in the embedded file or by PostgreSQL full-text search in server mode, so that every replica
reads the same keyword data and a source's keyword rows commit with its record.

SQLite: one contentless FTS5 table per collection (`kw_<hash>`, made at run time, Porter stemming), whose
rowids are those of the collection's `keyword_chunks` rows. One table per collection keeps BM25's statistics
(document count, average length, document frequencies) the collection's own, as they were when each
collection had its own table; one FTS5 table over every collection would rank a collection's chunks by
every other's words. Contentless, because the text is already in `keyword_chunks`, which is also where the
old text of a replaced or removed chunk is read from to take it out of the FTS5 index. (`keyword_chunks`
has indexes, so VACUUM keeps its rowids.)

PostgreSQL: migration 0001 gives `keyword_chunks` a generated `tsv` column (`to_tsvector('english', text)`)
with a GIN index and a generated `doc_len` (its count of words, as FTS5 counts tokens). The ranking is BM25
(k1 1.2, b 0.75, the FTS5 defaults) computed in SQL over the chunks matching any content word of the query,
with the collection's own statistics: PostgreSQL's `ts_rank`/`ts_rank_cd` have no inverse document
frequency, so a question's rare, telling word would count no more than its common ones (docs/retrieval.md,
"Keyword index on PostgreSQL").
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text
from sqlalchemy.dialects import postgresql

from core.storage.models import keyword_chunks
from core.text import STOPWORDS

_TOKEN = re.compile(r"\w+")
_BATCH = 500  # ids per SQL statement, below SQLite's variable limit
TOKENIZER = "porter unicode61 remove_diacritics 2"
TEXT_SEARCH_CONFIG = "english"
"""PostgreSQL's text search configuration for chunks and queries (Snowball English stemming, stopwords)."""
BM25_K1 = 1.2
BM25_B = 0.75


def content_words(query: str) -> list[str]:
    """The query's words, lower-cased, without stopwords or repeats, in order."""
    return list(dict.fromkeys(w for w in _TOKEN.findall(query.lower()) if w not in STOPWORDS))


def match_expression(query: str) -> str:
    """An FTS5 query matching any content word of the text (quoted, so no word is read as an operator)."""
    return " OR ".join(f'"{w}"' for w in content_words(query))


def fts_table(collection: str) -> str:
    """The SQLite FTS5 table of one collection (a name safe to put in SQL)."""
    return "kw_" + hashlib.sha1(collection.encode()).hexdigest()[:16]


# BM25 over the chunks of one collection that hold any query lexeme. The lexemes are those PostgreSQL itself
# makes of the query's words; a lexeme's document frequency is the number of its postings. MATERIALIZED: each
# part is computed once, not again for every row that reads it.
_PG_SEARCH = text(
    r"""
    WITH terms AS MATERIALIZED (
        SELECT DISTINCT lexeme AS term FROM unnest(to_tsvector(CAST(:config AS regconfig), :words))
    ),
    hits AS MATERIALIZED (
        SELECT p.chunk_id, p.frequency, p.doc_len, count(*) OVER (PARTITION BY p.term) AS documents
        FROM keyword_postings p
        WHERE p.collection = :collection AND p.term IN (SELECT term FROM terms)
    ),
    stats AS (
        SELECT documents, total_length::float8 / greatest(documents, 1) AS average_length
        FROM keyword_stats WHERE collection = :collection
    )
    SELECT h.chunk_id, sum(
        ln(1 + (s.documents - h.documents + 0.5) / (h.documents + 0.5))
        * h.frequency * (:k1 + 1)
        / (h.frequency + :k1 * (1 - :b + :b * h.doc_len / greatest(s.average_length, 1)))
    ) AS score
    FROM hits h CROSS JOIN stats s
    GROUP BY h.chunk_id
    ORDER BY score DESC, h.chunk_id
    LIMIT :k
    """
)
"""BM25 over the inverted index that a trigger keeps beside `keyword_chunks` (migration 0003): a posting per
(collection, lexeme, chunk) with the lexeme's count and the chunk's length, and per-collection totals. Only
the postings of the query's lexemes are read."""


class KeywordIndex:
    """The keyword rows of every collection, keyed by (collection, chunk id), on the process's one Engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer at a time: writers of this process queue here rather than on the file lock.
        self._write_lock = threading.Lock() if self._sqlite else None
        self._ready: set[str] = set()

    @property
    def engine(self) -> Engine:
        """The database the rows live in (shared with the source records)."""
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[KeywordTransaction]:
        """One database transaction: the keyword rows and whatever else is written on its connection commit
        together."""
        with self._writing(), self._engine.begin() as connection:
            try:
                yield KeywordTransaction(self, connection)
            except BaseException:
                self._ready.clear()  # FTS5 tables created inside the transaction are gone too
                raise

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

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

    def existing_ids(self, collection: str, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids are indexed."""
        found: set[str] = set()
        with self._engine.connect() as connection:
            for batch in _batches(ids):
                rows = connection.execute(
                    select(keyword_chunks.c.chunk_id).where(
                        keyword_chunks.c.collection == collection, keyword_chunks.c.chunk_id.in_(batch)
                    )
                )
                found.update(r[0] for r in rows)
        return found

    def source_ids(self, collection: str, source: str) -> set[str]:
        """Ids of every indexed chunk of one source."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(keyword_chunks.c.chunk_id).where(
                    keyword_chunks.c.collection == collection, keyword_chunks.c.source == source
                )
            )
            return {r[0] for r in rows}

    def count(self, collection: str) -> int:
        """How many chunks of the collection are indexed."""
        with self._engine.connect() as connection:
            query = select(func.count()).where(keyword_chunks.c.collection == collection)
            return int(connection.execute(query).scalar_one())

    def search(self, collection: str, query: str, k: int) -> list[tuple[str, float]]:
        """The k best chunks by BM25 as (chunk id, score), best first; higher scores are better."""
        words = content_words(query)
        if not words or k <= 0:
            return []
        with self._engine.connect() as connection:
            if not self._sqlite:
                rows = connection.execute(
                    _PG_SEARCH,
                    {
                        "config": TEXT_SEARCH_CONFIG,
                        "words": " ".join(words),
                        "collection": collection,
                        "k1": BM25_K1,
                        "b": BM25_B,
                        "k": k,
                    },
                ).all()
                return [(str(chunk_id), float(score)) for chunk_id, score in rows]
            if not self._exists(connection, collection):
                return []
            table = fts_table(collection)
            rows = connection.execute(
                text(
                    f"SELECT k.chunk_id, f.rank FROM (SELECT rowid, bm25({table}) AS rank FROM {table}"
                    f" WHERE {table} MATCH :expression ORDER BY rank LIMIT :k) f"
                    " JOIN keyword_chunks k ON k.rowid = f.rowid ORDER BY f.rank"
                ),
                {"expression": match_expression(query), "k": k},
            ).all()
        return [(str(chunk_id), -float(rank)) for chunk_id, rank in rows]

    def _exists(self, connection: Connection, collection: str) -> bool:
        """Whether the collection's FTS5 table exists (reads never create it)."""
        table = fts_table(collection)
        if table in self._ready:
            return True
        found = connection.execute(
            text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": table}
        ).first()
        return found is not None

    def _table(self, connection: Connection, collection: str) -> str:
        """The collection's FTS5 table, created on its first write (inside the caller's transaction)."""
        table = fts_table(collection)
        if table not in self._ready:
            connection.exec_driver_sql(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5("
                f"text, content = '', tokenize = '{TOKENIZER}')"
            )
            self._ready.add(table)
        return table

    def close(self) -> None:
        """Nothing to close: the Engine belongs to the composition root (core.services.Services)."""


class KeywordTransaction:
    """Writes inside `KeywordIndex.transaction()`: nothing is visible to readers until the block commits."""

    def __init__(self, index: KeywordIndex, connection: Connection) -> None:
        self._index = index
        self.connection = connection
        """The transaction's connection, for other tables (the source records) that must commit with it."""

    def upsert(
        self, collection: str, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]
    ) -> None:
        """Index chunks, replacing any with the same id."""
        rows = sorted(
            (
                {"collection": collection, "chunk_id": i, "source": s, "text": t}
                for i, t, s in zip(ids, texts, sources, strict=True)
            ),
            key=lambda row: row["chunk_id"],  # one order for every writer: no deadlock between two
        )
        rows = list({row["chunk_id"]: row for row in rows}.values())  # the last of a repeated id wins
        if not rows:
            return
        if not self._index._sqlite:
            insert = postgresql.insert(keyword_chunks)
            statement = insert.on_conflict_do_update(
                index_elements=[keyword_chunks.c.collection, keyword_chunks.c.chunk_id],
                set_={"source": insert.excluded.source, "text": insert.excluded.text},
            )
            for start in range(0, len(rows), _BATCH):
                self.connection.execute(statement, rows[start : start + _BATCH])
            return
        table = self._index._table(self.connection, collection)
        chunk_ids = [row["chunk_id"] for row in rows]
        self.delete(collection, chunk_ids)
        for start in range(0, len(rows), _BATCH):
            self.connection.execute(keyword_chunks.insert(), rows[start : start + _BATCH])
        for batch in _batches(chunk_ids):
            self.connection.execute(
                text(
                    f"INSERT INTO {table} (rowid, text) SELECT rowid, text FROM keyword_chunks"
                    " WHERE collection = :collection AND chunk_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"collection": collection, "ids": batch},
            )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        """Remove chunks by id (unknown ids are ignored)."""
        if self._index._sqlite and ids:
            table = self._index._table(self.connection, collection)
            for batch in _batches(ids):
                # A contentless FTS5 table forgets a row when given the text it indexed.
                self.connection.execute(
                    text(
                        f"INSERT INTO {table} ({table}, rowid, text) SELECT 'delete', rowid, text"
                        " FROM keyword_chunks WHERE collection = :collection AND chunk_id IN :ids"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"collection": collection, "ids": batch},
                )
        for batch in _batches(ids):
            self.connection.execute(
                delete(keyword_chunks).where(
                    keyword_chunks.c.collection == collection, keyword_chunks.c.chunk_id.in_(batch)
                )
            )


def _batches(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _BATCH):
        yield list(ids[start : start + _BATCH])
