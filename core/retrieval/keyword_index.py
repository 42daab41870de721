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

Filters (core/retrieval/filters.py): each row also has the columns a filter reads (migration 0004), and a
filtered search ranks only the rows a WHERE on them lets through, inside the same statement (bound values,
never formatted into the SQL); BM25's statistics stay the whole collection's.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import BindParameter, Connection, Engine, TextClause, bindparam, delete, func, select, text
from sqlalchemy.dialects import postgresql

from core.retrieval.filters import FILTER_METADATA, SOURCE_NAME, SOURCE_STEM, SearchFilter
from core.storage.models import keyword_chunks
from core.text import STOPWORDS

_TOKEN = re.compile(r"\w+")
_BATCH = 500  # ids per SQL statement, below SQLite's variable limit
TOKENIZER = "porter unicode61 remove_diacritics 2"
TEXT_SEARCH_CONFIG = "english"
"""PostgreSQL's text search configuration for chunks and queries (Snowball English stemming, stopwords)."""
BM25_K1 = 1.2
BM25_B = 0.75


_ADJECTIVE_Y = re.compile(r"^(?![a-z]*[au]lly$)([a-z]{2,}([b-df-hj-np-tv-xz])\2)y$")
"""An adjective made from a noun that ends in a doubled consonant, with -y ("smelly", "grassy", "chilly"):
neither stemmer takes the -y off (Porter and Snowball both give "smelli"), so "smelly" never meets "smell"
or "smells". Only doubled consonants, and never an -ally or -ully adverb ("usually", "fully"): the general
-y rule also turned "party" into "part" and "early" into "earl", and cost SQuAD hybrid hit@5 0.001."""


def content_words(query: str) -> list[str]:
    """The query's words, lower-cased, without stopwords or repeats, in order; an -y adjective of a noun in
    a doubled consonant is followed by that noun ("smelly" -> "smelly", "smell"), which the stemmers cannot
    reach from it."""
    words: list[str] = []
    for word in _TOKEN.findall(query.lower()):
        if word in STOPWORDS:
            continue
        words.append(word)
        if noun := _ADJECTIVE_Y.match(word):
            words.append(noun.group(1))
    return list(dict.fromkeys(words))


def match_expression(query: str) -> str:
    """An FTS5 query matching any content word of the text (quoted, so no word is read as an operator)."""
    return " OR ".join(f'"{w}"' for w in content_words(query))


def fts_table(collection: str) -> str:
    """The SQLite FTS5 table of one collection (a name safe to put in SQL)."""
    return "kw_" + hashlib.sha1(collection.encode()).hexdigest()[:16]


# BM25 over the chunks of one collection that hold any query lexeme. The lexemes are those PostgreSQL itself
# makes of the query's words; a lexeme's document frequency is the number of its postings. MATERIALIZED: each
# part is computed once, not again for every row that reads it.
_PG_SEARCH = r"""
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
    {allowed}
    GROUP BY h.chunk_id
    ORDER BY score DESC, h.chunk_id
    LIMIT :k
    """
"""BM25 over the inverted index that a trigger keeps beside `keyword_chunks` (migration 0003): a posting per
(collection, lexeme, chunk) with the lexeme's count and the chunk's length, and per-collection totals. Only
the postings of the query's lexemes are read. `{allowed}` is empty, or a filter's WHERE on the chunks: the
document frequencies stay the collection's own, as FTS5's do under a filter."""
_PG_UNFILTERED = text(_PG_SEARCH.format(allowed=""))
_SQLITE_SEARCH = (
    "SELECT k.chunk_id, f.rank FROM (SELECT rowid, bm25({table}) AS rank FROM {table}"
    " WHERE {table} MATCH :expression ORDER BY rank LIMIT :k) f"
    " JOIN keyword_chunks k ON k.rowid = f.rowid ORDER BY f.rank"
)
"""FTS5's own top k (it ranks inside the virtual table), then the chunk ids."""
_SQLITE_FILTERED = (
    "SELECT k.chunk_id, bm25({table}) AS rank FROM {table} JOIN keyword_chunks k ON k.rowid = {table}.rowid"
    " WHERE {table} MATCH :expression AND k.collection = :collection AND {allowed} ORDER BY rank LIMIT :k"
)
"""The top k of the matches a filter lets through: a join on rowid, so each match is checked against its own
row. (A `rowid IN (subquery)` is handed to FTS5 as one lookup per allowed rowid: seconds, not milliseconds,
when a filter lets most of a large collection through.)"""


def filter_conditions(
    where: SearchFilter, table: str = ""
) -> tuple[list[str], dict[str, Any], list[BindParameter[Any]]]:
    """SQL conditions on `keyword_chunks` columns (qualified by `table`, its alias, when given) for a filter,
    their parameters, and the expanding ones among them. Only fixed column names and placeholders are written
    into the SQL; every value is bound."""
    prefix = f"{table}." if table else ""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    expanding: list[BindParameter[Any]] = []

    def one_of(column: str, param: str, values: Sequence[str]) -> str:
        if param not in params:
            params[param] = list(values)
            expanding.append(bindparam(param, expanding=True))
        return f"{prefix}{column} IN :{param}"

    if where.sources:
        keys = where.sources  # already widened to absolute paths by the retriever (SearchFilter.source_keys)
        conditions.append(
            f"({one_of('source', 'f_sources', keys)} OR {one_of(SOURCE_NAME, 'f_sources', keys)}"
            f" OR {one_of(SOURCE_STEM, 'f_sources', keys)})"
        )
    for column, values in (("kind", where.kinds), ("title", where.titles), ("section", where.sections)):
        if values:
            conditions.append(one_of(column, f"f_{column}", values))
    bounds = (
        ("page", ">=", "f_page_from", where.page_from),
        ("page", "<=", "f_page_to", where.page_to),
        ("ingested_at", ">", "f_after", where.ingested_after_epoch()),
        ("ingested_at", "<", "f_before", where.ingested_before_epoch()),
    )
    for column, operator, param, bound in bounds:
        if bound is not None:
            conditions.append(f"{prefix}{column} {operator} :{param}")
            params[param] = bound
    return conditions, params, expanding


def _pg_statement(where: SearchFilter | None) -> tuple[TextClause, dict[str, Any]]:
    """PostgreSQL's search, restricted by chunk id to the rows the filter lets through; and its parameters."""
    if where is None or where.is_empty():
        return _PG_UNFILTERED, {}
    conditions, params, expanding = filter_conditions(where)
    allowed = (
        "WHERE h.chunk_id IN (SELECT chunk_id FROM keyword_chunks"
        f" WHERE collection = :collection AND {' AND '.join(conditions)})"
    )
    return text(_PG_SEARCH.format(allowed=allowed)).bindparams(*expanding), params


def _sqlite_statement(table: str, where: SearchFilter | None) -> tuple[TextClause, dict[str, Any]]:
    """SQLite's search of one collection's FTS5 table, filtered when `where` restricts; and its parameters."""
    if where is None or where.is_empty():
        return text(_SQLITE_SEARCH.format(table=table)), {}
    conditions, params, expanding = filter_conditions(where, "k")
    sql = _SQLITE_FILTERED.format(table=table, allowed=" AND ".join(conditions))
    return text(sql).bindparams(*expanding), params


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
        self,
        collection: str,
        ids: Sequence[str],
        texts: Sequence[str],
        sources: Sequence[str],
        metadatas: Sequence[Mapping[str, object]] | None = None,
    ) -> None:
        """Index chunks, replacing any with the same id, in one transaction."""
        with self.transaction() as tx:
            tx.upsert(collection, ids, texts, sources, metadatas)

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

    def search(
        self, collection: str, query: str, k: int, *, where: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """The k best chunks by BM25 as (chunk id, score), best first; higher scores are better. With `where`,
        the k best of the chunks it lets through (the filter is part of the query, not applied after it)."""
        words = content_words(query)
        if not words or k <= 0:
            return []
        with self._engine.connect() as connection:
            if not self._sqlite:
                statement, params = _pg_statement(where)
                rows = connection.execute(
                    statement,
                    {
                        "config": TEXT_SEARCH_CONFIG,
                        "words": " ".join(words),
                        "collection": collection,
                        "k1": BM25_K1,
                        "b": BM25_B,
                        "k": k,
                        **params,
                    },
                ).all()
                return [(str(chunk_id), float(score)) for chunk_id, score in rows]
            if not self._exists(connection, collection):
                return []
            statement, params = _sqlite_statement(fts_table(collection), where)
            rows = connection.execute(
                statement,
                {"expression": match_expression(query), "k": k, "collection": collection, **params},
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
        self,
        collection: str,
        ids: Sequence[str],
        texts: Sequence[str],
        sources: Sequence[str],
        metadatas: Sequence[Mapping[str, object]] | None = None,
    ) -> None:
        """Index chunks, replacing any with the same id; `metadatas` (one per chunk, as in Chroma) give the
        columns filters read (`FILTER_METADATA`), NULL where a chunk has no such key."""
        metas: Sequence[Mapping[str, object]] = metadatas if metadatas is not None else [{}] * len(ids)
        rows = sorted(
            (
                {
                    "collection": collection,
                    "chunk_id": i,
                    "source": s,
                    "text": t,
                    **{key: m.get(key) for key in FILTER_METADATA},
                }
                for i, t, s, m in zip(ids, texts, sources, metas, strict=True)
            ),
            key=lambda row: str(row["chunk_id"]),  # one order for every writer: no deadlock between two
        )
        rows = list({row["chunk_id"]: row for row in rows}.values())  # the last of a repeated id wins
        if not rows:
            return
        if not self._index._sqlite:
            insert = postgresql.insert(keyword_chunks)
            statement = insert.on_conflict_do_update(
                index_elements=[keyword_chunks.c.collection, keyword_chunks.c.chunk_id],
                set_={name: insert.excluded[name] for name in ("source", "text", *FILTER_METADATA)},
            )
            for start in range(0, len(rows), _BATCH):
                self.connection.execute(statement, rows[start : start + _BATCH])
            return
        table = self._index._table(self.connection, collection)
        chunk_ids = [str(row["chunk_id"]) for row in rows]
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
