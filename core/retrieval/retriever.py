"""Retrieval: dense (Chroma), BM25 (keyword index) or both fused by reciprocal rank fusion."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

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
        self._keyword_pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _keywords_soon(self, query: str, collection: str, depth: int) -> Future[list[str]]:
        """Start a BM25 search on the retriever's own small pool, so that it overlaps the query's embedding
        and dense search (in server mode both are round trips to other servers)."""
        with self._lock:
            if self._keyword_pool is None:
                self._keyword_pool = ThreadPoolExecutor(
                    # one BM25 search per database connection the process may hold
                    self._settings.database_pool_size,
                    thread_name_prefix="bm25",
                )
            pool = self._keyword_pool
        keywords = self._store.keywords
        return pool.submit(lambda: [i for i, _ in keywords.search(collection, query, depth)])

    def close(self) -> None:
        """Stop the keyword pool (searches in flight finish first)."""
        with self._lock:
            pool, self._keyword_pool = self._keyword_pool, None
        if pool is not None:
            pool.shutdown(wait=True)

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
        depth = max(k, self._settings.retrieval_depth)
        searches = [] if mode == "dense" else [self._keywords_soon(q, collection, depth) for q in queries]
        matrix = self._embedder.embed(list(queries))
        vectors = self._store.vectors
        if len(queries) == 1 and mode == "dense":
            return [self._shown(p) for p in vectors.search(collection, matrix[0], k)]
        ranked_lists = [
            self._rank(vector, searches[n] if searches else None, collection, mode, depth)
            for n, vector in enumerate(matrix)
        ]
        if len(ranked_lists) == 1:
            ranked, known = ranked_lists[0]
        else:  # a passage's score is its best cosine over every query: read them all again below
            ranked, known = (
                reciprocal_rank_fusion([(r, 1.0) for r, _ in ranked_lists], self._settings.rrf_k),
                {},
            )
        top = ranked[:k]
        found = {i: known[i] for i in top if i in known}
        if missing := [i for i in top if i not in found]:  # BM25-only hits: one more read for their text
            found.update(vectors.passages(collection, missing, matrix))
        return [self._shown(found[i]) for i in top if i in found]

    def _shown(self, passage: Passage) -> Passage:
        """The passage with its source as answers and citations show it (no server paths)."""
        return {**passage, "source": shown_uri(passage["source"], self._settings.data_dir)}

    def _rank(
        self,
        vector: np.ndarray,
        keyword_search: Future[list[str]] | None,
        collection: str,
        mode: RetrieverMode,
        depth: int,
    ) -> tuple[list[str], dict[str, Passage]]:
        """Chunk ids, best first, for one query in one mode (its BM25 search already started), and the
        passages the dense search returned with them (scored against this query)."""
        if mode == "bm25":
            assert keyword_search is not None
            return keyword_search.result(), {}
        dense = {p["chunk_id"]: p for p in self._store.vectors.search(collection, vector, depth)}
        if mode == "dense" or keyword_search is None:
            return list(dense), dense
        fused = reciprocal_rank_fusion(
            [
                (list(dense), self._settings.dense_weight),
                (keyword_search.result(), self._settings.bm25_weight),
            ],
            self._settings.rrf_k,
        )
        return fused, dense
