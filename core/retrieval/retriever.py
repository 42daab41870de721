"""Retrieval: dense (Chroma), BM25 (keyword index) or both fused by reciprocal rank fusion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.retrieval.chunk_store import ChunkStore
from core.retrieval.embedders import Embedder
from core.settings import Settings
from core.storage.sources import shown_uri
from core.types import Passage, RetrieverMode


def reciprocal_rank_fusion(rankings: list[tuple[list[str], float]], rrf_k: int) -> list[str]:
    """Fuse ranked id lists, each with a weight: score(id) = sum of weight / (rrf_k + rank), rank from 1."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (rrf_k + rank)
    return sorted(scores, key=lambda chunk_id: -scores[chunk_id])


class Retriever:
    """Top-k passages for a query from one collection. Every passage's `score` is its cosine similarity to the
    query, whichever retriever found it, so relevance floors mean the same thing in every mode.
    """

    def __init__(self, embedder: Embedder, store: ChunkStore, settings: Settings) -> None:
        self._embedder = embedder
        self._store = store
        self._settings = settings

    def search(
        self, query: str, *, k: int, collection: str, mode: RetrieverMode | None = None
    ) -> list[Passage]:
        """Blocking: run it in a worker thread from async code."""
        return self.search_all([query], k=k, collection=collection, mode=mode)

    def search_all(
        self, queries: Sequence[str], *, k: int, collection: str, mode: RetrieverMode | None = None
    ) -> list[Passage]:
        """Search with each query and fuse the rankings (RRF, equal weights); a passage gets its best cosine.

        Several queries serve follow-ups: the bare message and the one that carries earlier turns each find
        passages the other misses. Blocking: run it in a worker thread from async code.
        """
        mode = mode or self._settings.retriever
        matrix = self._embedder.embed(list(queries))
        vectors = self._store.vectors
        if len(queries) == 1 and mode == "dense":
            return [self._shown(p) for p in vectors.search(collection, matrix[0], k)]
        depth = max(k, self._settings.retrieval_depth)
        rankings = [
            (self._rank(query, vector, collection, mode, depth), 1.0)
            for query, vector in zip(queries, matrix, strict=True)
        ]
        ranked = (
            rankings[0][0] if len(rankings) == 1 else reciprocal_rank_fusion(rankings, self._settings.rrf_k)
        )
        found = vectors.passages(collection, ranked[:k], matrix)
        return [self._shown(found[i]) for i in ranked[:k] if i in found]

    def _shown(self, passage: Passage) -> Passage:
        """The passage with its source as answers and citations show it (no server paths)."""
        return {**passage, "source": shown_uri(passage["source"], self._settings.data_dir)}

    def _rank(
        self, query: str, vector: np.ndarray, collection: str, mode: RetrieverMode, depth: int
    ) -> list[str]:
        """Chunk ids, best first, for one query in one mode."""
        keyword_ids = (
            [] if mode == "dense" else [i for i, _ in self._store.keywords.search(collection, query, depth)]
        )
        if mode == "bm25":
            return keyword_ids
        dense_ids = [p["chunk_id"] for p in self._store.vectors.search(collection, vector, depth)]
        if mode == "dense":
            return dense_ids
        return reciprocal_rank_fusion(
            [(dense_ids, self._settings.dense_weight), (keyword_ids, self._settings.bm25_weight)],
            self._settings.rrf_k,
        )
