"""Where ingested chunks live: dense vectors in Chroma and BM25 terms in the keyword index, kept in step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.keyword_index import KeywordIndex
from core.settings import Settings
from core.vectorstore import Metadata, VectorStore, open_vector_store


class ChunkStore:
    """Writes and removals go to both indexes; a chunk counts as stored only when both hold it.

    Chroma is written first and the keyword index second, so a crash in between leaves a chunk that the next
    ingest sees as missing and writes again (upserts make that harmless).
    """

    def __init__(self, vectors: VectorStore, keywords: KeywordIndex) -> None:
        self.vectors = vectors
        self.keywords = keywords

    def check(self, collection: str) -> None:
        """Fail fast on a bad collection name or one filled by another embedding model."""
        self.vectors.collection(collection)

    def existing_ids(self, collection: str, ids: Sequence[str]) -> set[str]:
        """Chunk ids stored in both indexes."""
        return self.vectors.existing_ids(collection, ids) & self.keywords.existing_ids(collection, ids)

    def add(
        self,
        collection: str,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Metadata],
        embeddings: np.ndarray,
    ) -> None:
        """Store chunks (replacing any with the same ids)."""
        self.vectors.add(collection, ids, texts, metadatas, embeddings)
        self.keywords.upsert(collection, ids, texts, [str(m["source"]) for m in metadatas])

    def source_ids(self, collection: str, source: str) -> set[str]:
        """Every chunk id either index holds for one source."""
        return self.vectors.source_ids(collection, source) | self.keywords.source_ids(collection, source)

    def remove(self, collection: str, ids: Sequence[str]) -> None:
        """Remove chunks from both indexes."""
        self.vectors.delete(collection, ids)
        self.keywords.delete(collection, ids)

    def remove_source(self, collection: str, source: str) -> int:
        """Remove every chunk of a source; returns how many there were."""
        ids = sorted(self.source_ids(collection, source))
        self.remove(collection, ids)
        return len(ids)

    def close(self) -> None:
        """Close the keyword index file."""
        self.keywords.close()


def open_chunk_store(settings: Settings, *, model_id: str, dimension: int) -> ChunkStore:
    """The configured Chroma store and the keyword index beside it, for one embedding model."""
    vectors = open_vector_store(settings, model_id=model_id, dimension=dimension)
    return ChunkStore(vectors, KeywordIndex(settings.keyword_db))
