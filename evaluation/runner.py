"""Scoring runs: search every question with one retriever mode, rank the gold, time each search.

An evaluation either ingests a corpus into a throw-away store (a temporary data dir) or reads a named
collection of the configured store; both yield an `EvalIndex` to score retrievers against.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from core.retrieval.filters import SearchFilter
from core.retrieval.vector_store import CollectionError, open_chroma
from core.services import Services, open_services
from core.settings import Settings
from core.types import Passage, RetrieverMode
from evaluation.dataset import GoldQuestion
from evaluation.metrics import (
    Rank,
    covers_paragraph,
    first_hit_rank,
    from_documents,
    hit_rate,
    mean_reciprocal_rank,
    on_pages,
    percentile,
)
from ingest.pipeline import Ingestor, IngestSummary

RETRIEVERS: tuple[RetrieverMode, ...] = ("dense", "bm25", "hybrid")
DEFAULT_KS = (1, 3, 5, 10)
MRR_CUTOFF = 10
DOC_K = 5
"""Document-level hit@k always reported, whatever ks were asked for."""


class Searcher(Protocol):
    """What scoring needs from a retriever (core.retrieval.retriever.Retriever is one)."""

    def search(
        self,
        query: str,
        *,
        k: int,
        collection: str,
        mode: RetrieverMode | None = None,
        where: SearchFilter | None = None,
    ) -> list[Passage]: ...

    def search_all(
        self,
        queries: Sequence[str],
        *,
        k: int,
        collection: str,
        mode: RetrieverMode | None = None,
        where: SearchFilter | None = None,
    ) -> list[Passage]: ...


@dataclass
class RetrieverScore:
    """One retriever mode's figures over a question set. Paragraph figures are None without paragraph gold."""

    retriever: str
    questions: int
    paragraph_questions: int
    hit_at: dict[int, float] | None
    mrr_at_10: float | None
    doc_hit_at: dict[int, float]
    doc_mrr_at_10: float
    page_questions: int
    page_hit_at: dict[int, float] | None
    page_mrr_at_10: float | None
    latency_p50_ms: float
    latency_p95_ms: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


@dataclass
class EvalIndex:
    """A searchable collection; `ingest` says how it was filled when the evaluation built it, `services` what
    it was opened with (the graph needs them to answer: `--answers`)."""

    searcher: Searcher
    collection: str
    settings: Settings
    ingest: IngestSummary | None = None
    services: Services | None = None

    @property
    def chunks(self) -> int | None:
        """Chunks in the collection when this run ingested it."""
        return None if self.ingest is None else self.ingest.chunks_added + self.ingest.chunks_skipped


def score_retriever(
    searcher: Searcher,
    questions: Sequence[GoldQuestion],
    *,
    mode: RetrieverMode,
    collection: str,
    ks: Sequence[int] = DEFAULT_KS,
    where: SearchFilter | None = None,
) -> RetrieverScore:
    """Search every question once (after one untimed warm-up search) and rank its gold paragraph, docs and
    pages. `where`: search only the chunks that match it."""
    depth = max(*ks, MRR_CUTOFF)
    search = partial(searcher.search, k=depth, collection=collection, mode=mode, where=where)
    if questions:
        search(questions[0].question)
    paragraph_ranks: list[Rank] = []
    doc_ranks: list[Rank] = []
    page_ranks: list[Rank] = []
    latency_ms: list[float] = []
    for item in questions:
        started = time.perf_counter()
        ranking = search(item.question)
        latency_ms.append((time.perf_counter() - started) * 1000)
        doc_ranks.append(first_hit_rank(ranking, partial(from_documents, gold_docs=item.gold_docs)))
        if item.para_id is not None:
            paragraph_ranks.append(first_hit_rank(ranking, partial(covers_paragraph, para_id=item.para_id)))
        if item.gold_pages:
            page_ranks.append(first_hit_rank(ranking, partial(on_pages, gold_pages=item.gold_pages)))
    return RetrieverScore(
        retriever=mode,
        questions=len(questions),
        paragraph_questions=len(paragraph_ranks),
        hit_at={k: round(hit_rate(paragraph_ranks, k), 4) for k in ks} if paragraph_ranks else None,
        mrr_at_10=round(mean_reciprocal_rank(paragraph_ranks, MRR_CUTOFF), 4) if paragraph_ranks else None,
        doc_hit_at={k: round(hit_rate(doc_ranks, k), 4) for k in sorted({*ks, DOC_K})},
        doc_mrr_at_10=round(mean_reciprocal_rank(doc_ranks, MRR_CUTOFF), 4),
        page_questions=len(page_ranks),
        page_hit_at={k: round(hit_rate(page_ranks, k), 4) for k in sorted({*ks, DOC_K})}
        if page_ranks
        else None,
        page_mrr_at_10=round(mean_reciprocal_rank(page_ranks, MRR_CUTOFF), 4) if page_ranks else None,
        latency_p50_ms=round(percentile(latency_ms, 50), 2),
        latency_p95_ms=round(percentile(latency_ms, 95), 2),
    )


def score_retrievers(
    index: EvalIndex,
    questions: Sequence[GoldQuestion],
    modes: Sequence[RetrieverMode] = RETRIEVERS,
    ks: Sequence[int] = DEFAULT_KS,
    where: SearchFilter | None = None,
) -> list[RetrieverScore]:
    """One score per retriever mode, on the same questions and collection."""
    return [
        score_retriever(index.searcher, questions, mode=m, collection=index.collection, ks=ks, where=where)
        for m in modes
    ]


def scratch_settings(base: Settings, data_dir: Path, **overrides: Any) -> Settings:
    """The base settings with every store moved under data_dir (local files, never a Chroma or database
    server: an evaluation must not write into a deployment's collections; pass `database_url` to test one)."""
    return Settings(
        **{
            **base.model_dump(),
            "data_dir": data_dir,
            "chroma_mode": "persistent",
            "chroma_url": None,
            "database_url": None,
            "chroma_path": None,
            "checkpoint_path": None,
            **overrides,
        }
    )


@contextmanager
def temporary_index(corpus: Sequence[str | Path], base: Settings, **overrides: Any) -> Iterator[EvalIndex]:
    """Ingest the corpus (files or directories) into a store under a temporary data dir, removed afterwards.

    `overrides` are settings fields, e.g. chunk_size and chunk_overlap.
    """
    with tempfile.TemporaryDirectory(prefix="docent-eval-", ignore_cleanup_errors=True) as tmp:
        settings = scratch_settings(base, Path(tmp), **overrides)
        services = open_services(settings)
        try:
            summary = Ingestor(settings, services.embedder, services.store).run(
                [str(item) for item in corpus], collection=settings.collection
            )
            yield EvalIndex(services.retriever, settings.collection, settings, summary, services)
        finally:
            services.close()


@contextmanager
def existing_index(settings: Settings, collection: str) -> Iterator[EvalIndex]:
    """A named collection of the configured store, searched as it is (a missing one is not created)."""
    if collection not in {c.name for c in open_chroma(settings).list_collections()}:
        raise CollectionError(f"no collection {collection!r} in the configured store; ingest into it first")
    services = open_services(settings)
    try:
        if not services.store.vectors.count(collection):
            raise CollectionError(f"collection {collection!r} is empty; ingest into it first")
        yield EvalIndex(services.retriever, collection, settings, services=services)
    finally:
        services.close()
