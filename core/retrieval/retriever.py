"""Retrieval: dense (Chroma), BM25 (keyword index) or both fused by reciprocal rank fusion."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.retrieval.chunk_store import ChunkStore
from core.retrieval.embedders import Embedder
from core.retrieval.filters import SearchFilter
from core.retrieval.rerank import Reranker
from core.settings import Settings
from core.storage.sources import shown_uri
from core.tracing import span
from core.types import Passage, RetrieverMode


def reciprocal_rank_fusion(rankings: list[tuple[list[str], float]], rrf_k: int) -> list[str]:
    """Fuse ranked id lists, each with a weight: score(id) = sum of weight / (rrf_k + rank), rank from 1."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (rrf_k + rank)
    return sorted(scores, key=lambda chunk_id: -scores[chunk_id])


PAGE_CANDIDATES = 3
"""With `distinct_pages`, a first stage whose passages show a page twice reads up to PAGE_CANDIDATES times as
many, to leave one per page."""

PEAK_RANK = 5
"""BM25's confidence is its best score over its PEAK_RANK-th best (see `bm25_weight`)."""


def bm25_peak(hits: Sequence[tuple[str, float]]) -> float:
    """How far BM25's best hit stands out: its score over the PEAK_RANK-th best score (inf with fewer hits,
    1.0 for a flat ranking). A question that shares rare words with one passage peaks (SQuAD: median 1.9);
    one whose words every page of a filing shares is flat (FinanceBench: median 1.2)."""
    if len(hits) < PEAK_RANK or hits[PEAK_RANK - 1][1] <= 0:
        return float("inf")
    return hits[0][1] / hits[PEAK_RANK - 1][1]


def bm25_weight(hits: Sequence[tuple[str, float]], settings: Settings) -> float:
    """BM25's weight in fusion for one query: `bm25_weight` when its ranking peaks (best score at least
    `bm25_peak_ratio` times the fifth), else `bm25_flat_weight`; measured on SQuAD and FinanceBench together
    (docs/retrieval.md)."""
    if bm25_peak(hits) >= settings.bm25_peak_ratio:
        return settings.bm25_weight
    return settings.bm25_flat_weight


def _page_of(passage: Passage) -> tuple[str, int] | None:
    """The (source, page) a passage comes from; None for an unpaged one (a web page's chunk)."""
    page = passage.get("page")
    return None if page is None else (passage["source"], page)


def distinct_pages(passages: Sequence[Passage], k: int) -> list[Passage]:
    """The k first passages, one per page of a paged document while other pages have candidates: a passage
    whose page an earlier one already shows moves behind those of pages not shown yet, in its order. A
    passage without a page (a web page's chunk) is its own. Page hit@5 on FinanceBench (docs/retrieval.md)."""
    shown: set[tuple[str, int]] = set()
    first: list[Passage] = []
    repeats: list[Passage] = []
    for passage in passages:
        if (where := _page_of(passage)) is None:
            first.append(passage)
            continue
        (repeats if where in shown else first).append(passage)
        shown.add(where)
    return (first + repeats)[:k]


class Retriever:
    """Top-k passages for a query from one collection. Every passage's `score` is its cosine similarity to the
    query, whichever retriever found it, so relevance floors mean the same thing in every mode.
    """

    def __init__(
        self, embedder: Embedder, store: ChunkStore, settings: Settings, reranker: Reranker | None = None
    ) -> None:
        """`reranker`: a second stage that reorders the best `rerank_candidates` fused passages."""
        self._embedder = embedder
        self._store = store
        self._settings = settings
        self._reranker = reranker
        self._keyword_pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _keywords_soon(
        self, query: str, collection: str, depth: int, where: SearchFilter | None
    ) -> Future[list[tuple[str, float]]]:
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

        def search() -> list[tuple[str, float]]:
            with span("bm25 query", _query_attributes(keywords.engine.dialect.name, collection, depth)) as s:
                hits = keywords.search(collection, query, depth, where=where)
                if s is not None:
                    s.set_attribute("docent.hits", len(hits))
                return hits

        # In the caller's context: its span is the search's parent, its request id is on the log lines.
        return pool.submit(contextvars.copy_context().run, search)

    def keyword_hits(
        self, query: str, *, k: int, collection: str, where: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """BM25 alone: the k best (chunk id, score), best first (benches read the scores fusion weighs)."""
        return self._store.keywords.search(collection, query, k, where=self._resolved(where))

    def close(self) -> None:
        """Stop the keyword pool (searches in flight finish first)."""
        with self._lock:
            pool, self._keyword_pool = self._keyword_pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def search(
        self,
        query: str,
        *,
        k: int,
        collection: str,
        mode: RetrieverMode | None = None,
        where: SearchFilter | None = None,
    ) -> list[Passage]:
        """Blocking: run it in a worker thread from async code."""
        return self.search_all([query], k=k, collection=collection, mode=mode, where=where)

    def search_all(
        self,
        queries: Sequence[str],
        *,
        k: int,
        collection: str,
        mode: RetrieverMode | None = None,
        where: SearchFilter | None = None,
    ) -> list[Passage]:
        """Search with each query and fuse the rankings (RRF, equal weights); a passage gets its best cosine.

        Several queries serve follow-ups: the bare message and the one that carries earlier turns each find
        passages the other misses. `where` restricts every search, dense and BM25, inside its own index,
        before any ranking is fused or cut to k. Blocking: run it in a worker thread from async code.
        """
        mode = mode or self._settings.retriever
        depth = max(k, self._settings.retrieval_depth)
        where = self._resolved(where)
        searches = (
            [] if mode == "dense" else [self._keywords_soon(q, collection, depth, where) for q in queries]
        )
        matrix = self._embedder.embed(list(queries))
        vectors = self._store.vectors
        if len(queries) == 1 and mode == "dense":
            wanted = self._candidates(k)
            with span("chroma query", _query_attributes("chromadb", collection, wanted)):
                found_dense = vectors.search(collection, matrix[0], wanted, where=where)
                if self._more_pages_wanted(found_dense, k):
                    found_dense = vectors.search(collection, matrix[0], wanted * PAGE_CANDIDATES, where=where)
            return self._reranked(queries[0], [self._shown(p) for p in found_dense], k)
        ranked_lists = [
            self._rank(vector, searches[n] if searches else None, collection, mode, depth, where)
            for n, vector in enumerate(matrix)
        ]
        if len(ranked_lists) == 1:
            ranked = ranked_lists[0]
        else:
            ranked = reciprocal_rank_fusion([(r, 1.0) for r in ranked_lists], self._settings.rrf_k)
        # The rankings carry ids alone (text and metadata for 50 candidates cost more than the search): one
        # read for the few kept, each scored by its best cosine over the queries; a second for the next few
        # when a page shows twice among them (`distinct_pages`).
        wanted = self._candidates(k)
        kept = self._read(collection, ranked[:wanted], matrix)
        if self._more_pages_wanted(kept, k):
            kept += self._read(collection, ranked[wanted : wanted * PAGE_CANDIDATES], matrix)
        return self._reranked(queries[0], kept, k)

    def _read(self, collection: str, ids: list[str], matrix: np.ndarray) -> list[Passage]:
        """The passages of these chunk ids, in their order (one Chroma read)."""
        if not ids:
            return []
        attributes = {**_query_attributes("chromadb", collection, len(ids)), "db.operation.name": "get"}
        with span("chroma get", attributes):
            found = self._store.vectors.passages(collection, ids, matrix)
        return [self._shown(found[i]) for i in ids if i in found]

    def _candidates(self, k: int) -> int:
        """Passages the first stage hands on: k, or `rerank_candidates` for a reranker to order."""
        return max(k, self._settings.rerank_candidates) if self._reranker is not None else k

    def _more_pages_wanted(self, passages: Sequence[Passage], k: int) -> bool:
        """`distinct_pages` is on and the first k passages show a page twice: the next candidates may hold
        other pages. A reranker's candidates are enough to choose from."""
        if not self._settings.distinct_pages or self._reranker is not None:
            return False
        pages = [where for p in passages[:k] if (where := _page_of(p)) is not None]
        return len(pages) != len(set(pages))

    def _reranked(self, query: str, passages: list[Passage], k: int) -> list[Passage]:
        """The k best passages, in the reranker's order when there is one, one per page while other pages
        have candidates (`distinct_pages`)."""
        if self._reranker is not None:
            passages = self._reranker.rerank(query, passages)
        return distinct_pages(passages, k) if self._settings.distinct_pages else passages[:k]

    def _resolved(self, where: SearchFilter | None) -> SearchFilter | None:
        """The filter as the indexes match it (None when it restricts nothing): a source named by the path
        answers show (inside the data dir or the working directory) also by its stored absolute path."""
        if where is None or where.is_empty():
            return None
        if not where.sources:
            return where
        return replace(where, sources=where.source_keys((self._settings.data_dir, Path.cwd())))

    def _shown(self, passage: Passage) -> Passage:
        """The passage with its source as answers and citations show it (no server paths)."""
        return {**passage, "source": shown_uri(passage["source"], self._settings.data_dir)}

    def _rank(
        self,
        vector: np.ndarray,
        keyword_search: Future[list[tuple[str, float]]] | None,
        collection: str,
        mode: RetrieverMode,
        depth: int,
        where: SearchFilter | None,
    ) -> list[str]:
        """Chunk ids, best first, for one query in one mode (its BM25 search already started)."""
        if mode == "bm25":
            assert keyword_search is not None
            return [i for i, _ in keyword_search.result()]
        with span("chroma query", _query_attributes("chromadb", collection, depth)):
            dense = [i for i, _ in self._store.vectors.nearest(collection, vector, depth, where=where)]
        if mode == "dense" or keyword_search is None:
            return dense
        keyword_hits = keyword_search.result()
        return reciprocal_rank_fusion(
            [
                (dense, self._settings.dense_weight),
                ([i for i, _ in keyword_hits], bm25_weight(keyword_hits, self._settings)),
            ],
            self._settings.rrf_k,
        )


def _query_attributes(system: str, collection: str, k: int) -> dict[str, str | int]:
    """An index query's span attributes: which store, which collection, how many results asked for."""
    return {
        "db.system.name": system,
        "db.collection.name": collection,
        "db.operation.name": "query",
        "docent.k": k,
    }
