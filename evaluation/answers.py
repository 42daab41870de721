"""Answer-level evaluation: each question asked through the whole graph (a fresh thread each), the answer and
its citations judged against the gold answers, documents, pages and paragraph."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from core.retrieval.filters import SearchFilter
from core.types import Citation, DocentContext, Passage, TurnOutput
from evaluation.answer_metrics import answer_tokens, contains, match_answer, word_count
from evaluation.dataset import GoldQuestion
from evaluation.metrics import covers_paragraph, from_documents, on_pages, percentile
from evaluation.runner import EvalIndex
from graph.build import DocentGraph, build_graph
from graph.turn import run_turn


@dataclass(frozen=True)
class JudgedAnswer:
    """One question's answer against its gold. Figures that need gold the question lacks are None."""

    exact_match: float | None
    span_f1: float | None
    answer_f1: float | None
    contains_gold: bool | None
    cited: int
    """Citations the answer's text references (`cited: true`)."""
    cited_supporting: int
    """Of those, the ones whose passage contains a gold answer or is the gold paragraph or a gold page."""
    names_gold_doc: bool
    """A citation (cited or not) comes from a gold document."""
    names_gold_page: bool | None
    holds_gold_paragraph: bool | None
    words: int
    model: str
    turn_ms: float


@dataclass
class AnswerScore:
    """The answers to a question set. Rates are shares of the questions that have the gold they need."""

    retriever: str
    """The graph's retriever mode (the configured default)."""
    k: int
    """Passages retrieved per question."""
    questions: int
    answer_questions: int
    """Questions with gold `answers`: the base of exact match, F1 and contains-gold."""
    exact_match: float | None
    span_f1: float | None
    answer_f1: float | None
    contains_gold: float | None
    citation_precision: float | None
    """Cited passages that contain or support the gold, over all cited passages (None: nothing cited)."""
    cited_citations: int
    cites_nothing: float
    """Share of answers with no cited passage."""
    citations_name_gold_doc: float
    page_questions: int
    citations_name_gold_page: float | None
    paragraph_questions: int
    citations_hold_gold_paragraph: float | None
    median_words: float
    models: dict[str, int]
    """Answering model -> answers it gave (a fallback shows up here)."""
    turn_p50_ms: float
    turn_p95_ms: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


def supports(passage: Passage, question: GoldQuestion) -> bool:
    """The passage holds a gold answer (normalised, on word boundaries) or is the gold paragraph or page."""
    text = answer_tokens(passage["text"])
    return (
        any(contains(text, answer_tokens(gold)) for gold in question.answers)
        or (question.para_id is not None and covers_paragraph(passage, question.para_id))
        or bool(question.gold_pages and on_pages(passage, question.gold_pages))
    )


def cited_passage(citation: Citation, contexts: Sequence[Passage]) -> Passage:
    """The retrieved passage a citation points at (by chunk id); built from the citation if it is missing."""
    found = next((p for p in contexts if p["chunk_id"] == citation["chunk_id"]), None)
    if found is not None:
        return found
    return Passage(
        chunk_id=citation["chunk_id"],
        text=citation["snippet"],
        source=citation["source"],
        title=citation["title"],
        page=citation.get("page"),
        section=None,
        score=0.0,
        paragraph_ids=[],
    )


def judge(
    question: GoldQuestion, output: TurnOutput, contexts: Sequence[Passage], turn_ms: float = 0.0
) -> JudgedAnswer:
    """One answer and its citations against the question's gold."""
    answer = output["answer"]
    match = match_answer(answer, question.answers) if question.answers else None
    passages = [cited_passage(c, contexts) for c in output["citations"]]
    cited = [p for c, p in zip(output["citations"], passages, strict=True) if c["cited"]]
    para_id = question.para_id
    return JudgedAnswer(
        exact_match=match.exact_match if match else None,
        span_f1=match.span_f1 if match else None,
        answer_f1=match.answer_f1 if match else None,
        contains_gold=match.contains_gold if match else None,
        cited=len(cited),
        cited_supporting=sum(supports(p, question) for p in cited),
        names_gold_doc=any(from_documents(p, question.gold_docs) for p in passages),
        names_gold_page=any(on_pages(p, question.gold_pages) for p in passages)
        if question.gold_pages
        else None,
        holds_gold_paragraph=any(covers_paragraph(p, para_id) for p in passages) if para_id else None,
        words=word_count(answer),
        model=output["model"],
        turn_ms=turn_ms,
    )


def summarise(judged: Sequence[JudgedAnswer], *, retriever: str, k: int) -> AnswerScore:
    """The judged answers' figures (4 decimals), asked with that retriever mode and k."""

    def share(values: Sequence[float | bool | None]) -> float | None:
        present = [float(v) for v in values if v is not None]
        return round(sum(present) / len(present), 4) if present else None

    def rate(pick: Callable[[JudgedAnswer], float | bool | None]) -> float | None:
        return share([pick(j) for j in judged])

    cited = sum(j.cited for j in judged)
    models: dict[str, int] = {}
    for j in judged:
        models[j.model] = models.get(j.model, 0) + 1
    turn_ms = [j.turn_ms for j in judged]
    return AnswerScore(
        retriever=retriever,
        k=k,
        questions=len(judged),
        answer_questions=sum(j.span_f1 is not None for j in judged),
        exact_match=rate(lambda j: j.exact_match),
        span_f1=rate(lambda j: j.span_f1),
        answer_f1=rate(lambda j: j.answer_f1),
        contains_gold=rate(lambda j: j.contains_gold),
        citation_precision=round(sum(j.cited_supporting for j in judged) / cited, 4) if cited else None,
        cited_citations=cited,
        cites_nothing=rate(lambda j: j.cited == 0) or 0.0,
        citations_name_gold_doc=rate(lambda j: j.names_gold_doc) or 0.0,
        page_questions=sum(j.names_gold_page is not None for j in judged),
        citations_name_gold_page=rate(lambda j: j.names_gold_page),
        paragraph_questions=sum(j.holds_gold_paragraph is not None for j in judged),
        citations_hold_gold_paragraph=rate(lambda j: j.holds_gold_paragraph),
        median_words=float(statistics.median(j.words for j in judged)) if judged else 0.0,
        models=models,
        turn_p50_ms=round(percentile(turn_ms, 50), 1),
        turn_p95_ms=round(percentile(turn_ms, 95), 1),
    )


async def ask_all(
    graph: DocentGraph, questions: Sequence[GoldQuestion], context: DocentContext
) -> list[JudgedAnswer]:
    """Ask each question on a new thread, one at a time (so no turn gate is needed), and judge its answer with
    the passages it was given."""
    judged = []
    for question in questions:
        started = time.perf_counter()
        result = await run_turn(graph, question.question, context=context)
        turn_ms = (time.perf_counter() - started) * 1000
        config: RunnableConfig = {"configurable": {"thread_id": result.thread_id}}
        contexts: list[Passage] = (await graph.aget_state(config)).values.get("contexts", [])
        judged.append(judge(question, result.output, contexts, turn_ms))
    return judged


def score_answers(
    index: EvalIndex, questions: Sequence[GoldQuestion], where: SearchFilter | None = None
) -> AnswerScore:
    """Answer every question with the graph compiled over the index's services (the configured answerer,
    retriever and k), its threads checkpointed in memory only. `where`: the run's filter."""
    if index.services is None:
        raise ValueError("answering needs the services the index was opened with")
    graph = build_graph(index.services, InMemorySaver())
    context = DocentContext(collection=index.collection, filter=where)
    judged = asyncio.run(ask_all(graph, questions, context))
    return summarise(judged, retriever=index.settings.retriever, k=index.settings.k)
