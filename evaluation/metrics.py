"""Ranking metrics: where the first gold chunk sits in a ranking, hit@k, MRR and latency percentiles."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePath

import numpy as np

from core.types import Passage

Rank = int | None
"""1-based position of the first relevant passage in a ranking; None when none was retrieved."""


def covers_paragraph(passage: Passage, para_id: str) -> bool:
    """True when the chunk overlaps the gold paragraph `<doc_id>#pN` (same file stem, pN among its ids)."""
    doc_id, _, paragraph = para_id.rpartition("#")
    return PurePath(passage["source"]).stem == doc_id and paragraph in passage["paragraph_ids"]


def from_documents(passage: Passage, gold_docs: Iterable[str]) -> bool:
    """True when the chunk comes from one of the gold documents, named by file name or by file stem."""
    path = PurePath(passage["source"])
    return any(gold in (path.name, path.stem) for gold in gold_docs)


def on_pages(passage: Passage, gold_pages: Iterable[tuple[str, int]]) -> bool:
    """True when the chunk comes from one of the gold pages (document by file name or stem, 1-based page)."""
    path = PurePath(passage["source"])
    return any(passage["page"] == page and doc in (path.name, path.stem) for doc, page in gold_pages)


def first_hit_rank(ranking: Sequence[Passage], relevant: Callable[[Passage], bool]) -> Rank:
    """The 1-based rank of the first relevant passage."""
    return next((rank for rank, passage in enumerate(ranking, start=1) if relevant(passage)), None)


def hit_rate(ranks: Sequence[Rank], k: int) -> float:
    """Share of questions with a relevant passage in the top k (hit@k, recall@k for one gold each)."""
    if not ranks:
        return 0.0
    return sum(rank is not None and rank <= k for rank in ranks) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[Rank], cutoff: int = 10) -> float:
    """MRR@cutoff: mean of 1/rank of the first relevant passage, 0 when it is missing or below the cutoff."""
    if not ranks:
        return 0.0
    return sum(1.0 / rank for rank in ranks if rank is not None and rank <= cutoff) / len(ranks)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, linear interpolation); 0 for no values."""
    return float(np.percentile(values, q)) if values else 0.0
