"""Where ingested chunks live: dense vectors in Chroma, BM25 terms in the keyword index, and one record per
source beside the keyword rows in the relational database, kept in step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.retrieval.filters import chunk_filter_metadata
from core.retrieval.keyword_index import KeywordIndex
from core.retrieval.vector_store import (
    Metadata,
    UnknownCollectionError,
    VectorStore,
    validate_collection_name,
)
from core.storage.corpus import bump_corpus
from core.storage.sources import SourceCatalog, SourceRecord, source_id


@dataclass(frozen=True)
class NewChunks:
    """Chunks to upsert into Chroma, with their embeddings (one row per id)."""

    ids: Sequence[str]
    texts: Sequence[str]
    metadatas: Sequence[Metadata]
    embeddings: np.ndarray


@dataclass(frozen=True)
class SourceVersion:
    """A source's complete chunk set (id, indexed text and metadata), the chunks of older versions to drop,
    and its record."""

    record: SourceRecord
    ids: Sequence[str]
    texts: Sequence[str]
    stale: Sequence[str]
    metadatas: Sequence[Metadata] | None = None
    """One per chunk, as split wrote it (None: the keyword rows get no filter columns)."""

    def stamped(self) -> list[Metadata] | None:
        """Each chunk's metadata with what filters read of this version (file name, stem, time of ingest)."""
        if self.metadatas is None:
            return None
        extra = chunk_filter_metadata(self.record.uri, self.record.ingested_at)
        return [{**metadata, **extra} for metadata in self.metadatas]


class ChunkStore:
    """Writes and removals go to both indexes; a chunk counts as stored only when both hold it.

    Chroma is written first (new vectors upserted, stale ones deleted), then one database transaction writes
    the keyword rows, drops the stale ones, marks each source done and bumps the collection's corpus version
    (core/storage/corpus.py). A crash anywhere before that commit
    leaves the source's old record, so the next run redoes it; ids are deterministic and writes are upserts,
    so redoing is harmless.
    """

    def __init__(
        self, vectors: Callable[[], VectorStore], keywords: KeywordIndex, sources: SourceCatalog
    ) -> None:
        self._vectors = vectors
        self.keywords = keywords
        self.sources = sources

    @property
    def vectors(self) -> VectorStore:
        """Chroma (opened by the composition root on first use)."""
        return self._vectors()

    def check(self, collection: str) -> None:
        """Fail fast on a bad collection name or one filled by another embedding model (creates nothing)."""
        try:
            self.vectors.collection(collection)
        except UnknownCollectionError:
            validate_collection_name(collection)

    def existing_ids(self, collection: str, ids: Sequence[str]) -> set[str]:
        """Chunk ids stored in both indexes."""
        return self.vectors.existing_ids(collection, ids) & self.keywords.existing_ids(collection, ids)

    def commit(self, collection: str, new: NewChunks, versions: Sequence[SourceVersion]) -> None:
        """Store new source versions: vectors first, then keyword rows, stale removals and records at once.

        Every chunk of a version, new or already embedded, gets the version's metadata in both indexes (its
        time of ingest among them), so that a filter reads the same of it in each."""
        stamped = [v.stamped() for v in versions]
        metadata = {
            chunk_id: meta
            for version, metas in zip(versions, stamped, strict=True)
            if metas is not None
            for chunk_id, meta in zip(version.ids, metas, strict=True)
        }
        new_metadatas = [metadata.get(i, m) for i, m in zip(new.ids, new.metadatas, strict=True)]
        self.vectors.add(collection, new.ids, new.texts, new_metadatas, new.embeddings)
        embedded = set(new.ids)
        known = [chunk_id for chunk_id in metadata if chunk_id not in embedded]
        self.vectors.update_metadata(collection, known, [metadata[i] for i in known])
        self.vectors.delete(collection, [chunk_id for v in versions for chunk_id in v.stale])
        with self.keywords.transaction() as tx:
            for version, metas in zip(versions, stamped, strict=True):
                tx.delete(collection, version.stale)
                uris = [version.record.uri] * len(version.ids)
                tx.upsert(collection, version.ids, version.texts, uris, metas)
                self.sources.put(tx.connection, version.record)
            bump_corpus(tx.connection, collection)

    def source_ids(self, collection: str, source: str) -> set[str]:
        """Every chunk id either index holds for one source."""
        return self.vectors.source_ids(collection, source) | self.keywords.source_ids(collection, source)

    def remove(self, collection: str, ids: Sequence[str]) -> None:
        """Remove chunks from both indexes."""
        self.vectors.delete(collection, ids)
        with self.keywords.transaction() as tx:
            tx.delete(collection, ids)
            bump_corpus(tx.connection, collection)

    def remove_source(self, collection: str, source: str) -> int:
        """Remove every chunk of a source and its record; returns how many chunks there were.

        Chroma goes first; the keyword rows and the record go in one transaction, so an interrupted removal
        leaves the record in place and can simply be repeated.
        """
        ids = sorted(self.source_ids(collection, source))
        self.vectors.delete(collection, ids)
        with self.keywords.transaction() as tx:
            tx.delete(collection, ids)
            self.sources.delete(tx.connection, collection, [source_id(source)])
            bump_corpus(tx.connection, collection)
        return len(ids)

    def close(self) -> None:
        """Close the keyword index (its database is the composition root's to dispose of)."""
        self.keywords.close()
