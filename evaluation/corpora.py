"""Several question sets, each on its own corpus, in one run: each one's figures and their means, so that a
default is chosen on all of them at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evaluation.answers import AnswerScore
from evaluation.followups import FollowUpScore
from evaluation.runner import DOC_K, RetrieverScore


@dataclass
class CorpusRun:
    """One `--qa`/`--corpus` (or `--collection`) pair: what was searched and every figure measured on it."""

    described: dict[str, Any]
    """The question file, the corpus or collection, its chunking and ingestion (JSON-ready)."""
    retrievers: list[RetrieverScore] = field(default_factory=list)
    followups: list[FollowUpScore] = field(default_factory=list)
    answers: AnswerScore | None = None

    @property
    def name(self) -> str:
        """The corpus directory, or the collection's name."""
        return str(self.described.get("corpus") or self.described.get("collection"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            **self.described,
            "retrievers": [score.to_dict() for score in self.retrievers],
            "followups": [score.to_dict() for score in self.followups],
            "answers": self.answers.to_dict() if self.answers else None,
        }


@dataclass
class MeanScore:
    """One retriever's figures averaged over the corpora that have the gold each needs (`corpora` counts them:
    paragraph gold, every corpus for documents, page gold)."""

    retriever: str
    paragraph_hit_at_5: float | None
    paragraph_mrr_at_10: float | None
    doc_hit_at_5: float
    doc_mrr_at_10: float
    page_hit_at_5: float | None
    page_mrr_at_10: float | None
    latency_p95_ms: float
    corpora: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


MEAN_ANSWER_FIGURES = (
    "exact_match",
    "span_f1",
    "answer_f1",
    "contains_gold",
    "citation_precision",
    "cites_nothing",
    "citations_name_gold_doc",
    "citations_name_gold_page",
    "citations_hold_gold_paragraph",
    "median_words",
)
"""AnswerScore's figures that are averaged over corpora (the counts and latencies are not)."""


def _mean(values: Sequence[float | None]) -> tuple[float | None, int]:
    """The mean of the present values (4 decimals) and how many there were."""
    present = [v for v in values if v is not None]
    return (round(sum(present) / len(present), 4) if present else None), len(present)


def _over(
    scores: Sequence[RetrieverScore], pick: Callable[[RetrieverScore], float | None]
) -> tuple[float | None, int]:
    return _mean([pick(score) for score in scores])


def mean_retrievers(runs: Sequence[CorpusRun]) -> list[MeanScore]:
    """Per retriever mode (in the first corpus's order), its hit@5 and MRR@10 averaged over the corpora.
    Paragraph hit@5 needs 5 among the run's cut-offs (`--k`); document and page hit@5 are always measured."""
    means = []
    for mode in [score.retriever for score in runs[0].retrievers] if runs else []:
        scores = [s for run in runs for s in run.retrievers if s.retriever == mode]
        paragraph_hit, paragraphs = _over(scores, lambda s: (s.hit_at or {}).get(DOC_K))
        doc_hit, docs = _over(scores, lambda s: s.doc_hit_at[DOC_K])
        page_hit, pages = _over(scores, lambda s: (s.page_hit_at or {}).get(DOC_K))
        means.append(
            MeanScore(
                retriever=mode,
                paragraph_hit_at_5=paragraph_hit,
                paragraph_mrr_at_10=_over(scores, lambda s: s.mrr_at_10)[0],
                doc_hit_at_5=doc_hit or 0.0,
                doc_mrr_at_10=_over(scores, lambda s: s.doc_mrr_at_10)[0] or 0.0,
                page_hit_at_5=page_hit,
                page_mrr_at_10=_over(scores, lambda s: s.page_mrr_at_10)[0],
                latency_p95_ms=round(_over(scores, lambda s: s.latency_p95_ms)[0] or 0.0, 2),
                corpora={"paragraph": paragraphs, "doc": docs, "page": pages},
            )
        )
    return means


def mean_answers(runs: Sequence[CorpusRun]) -> dict[str, Any] | None:
    """Each of MEAN_ANSWER_FIGURES averaged over the corpora that have it; `corpora` counts them."""
    scores = [run.answers for run in runs if run.answers is not None]
    if not scores:
        return None
    means: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for name in MEAN_ANSWER_FIGURES:
        means[name], counts[name] = _mean([getattr(score, name) for score in scores])
    return {**means, "corpora": counts}


def mean_over_corpora(runs: Sequence[CorpusRun]) -> dict[str, Any]:
    """The JSON `mean` object: how many corpora, the retrievers' means and the answers' means."""
    return {
        "corpora": len(runs),
        "retrievers": [mean.to_dict() for mean in mean_retrievers(runs)],
        "answers": mean_answers(runs),
    }
