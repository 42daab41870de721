"""Retrieval: dense (Chroma), BM25 (keyword index) or both fused by reciprocal rank fusion."""

from __future__ import annotations

from typing import Literal

from core.chunk_store import ChunkStore
from core.embeddings import OnnxMiniLMEmbedder
from core.passages import Passage
from core.settings import Settings

RetrieverMode = Literal["dense", "bm25", "hybrid"]


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

    def __init__(self, embedder: OnnxMiniLMEmbedder, store: ChunkStore, settings: Settings) -> None:
        self._embedder = embedder
        self._store = store
        self._settings = settings

    def search(
        self, query: str, *, k: int, collection: str, mode: RetrieverMode | None = None
    ) -> list[Passage]:
        """Blocking: run it in a worker thread from async code."""
        mode = mode or self._settings.retriever
        vector = self._embedder.embed([query])[0]
        vectors = self._store.vectors
        if mode == "dense":
            return vectors.search(collection, vector, k)
        depth = max(k, self._settings.retrieval_depth)
        keyword_ids = [chunk_id for chunk_id, _ in self._store.keywords.search(collection, query, depth)]
        if mode == "bm25":
            found = vectors.passages(collection, keyword_ids[:k], vector)
            return [found[i] for i in keyword_ids[:k] if i in found]
        dense = vectors.search(collection, vector, depth)
        fused = reciprocal_rank_fusion(
            [
                ([p["chunk_id"] for p in dense], self._settings.dense_weight),
                (keyword_ids, self._settings.bm25_weight),
            ],
            self._settings.rrf_k,
        )[:k]
        found = {p["chunk_id"]: p for p in dense}
        found.update(vectors.passages(collection, [i for i in fused if i not in found], vector))
        return [found[i] for i in fused if i in found]
