"""The no-model answerer: quotes the retrieved sentences that best match the question, with citations."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from core.answering.base import AnswerRequest
from core.text import sentences, terms
from core.types import Answer, Citation, Passage, citation_of

NO_ANSWER = "I could not find anything about that in the ingested documents."
MODEL_NAME = "extractive"


@dataclass(frozen=True)
class _Candidate:
    passage_index: int
    position: int
    text: str
    score: float


class ExtractiveAnswerer:
    """Scores each sentence of the relevant passages by the question terms it shares (IDF-weighted), plus the
    passage's retrieval score, and answers with the best few, each followed by its `[n]`.
    """

    def __init__(self, *, max_sentences: int = 3, min_score: float = 0.2) -> None:
        self._max_sentences = max_sentences
        self._min_score = min_score

    @property
    def model(self) -> str:
        """Reported as `model` in every output."""
        return MODEL_NAME

    async def answer(self, request: AnswerRequest) -> Answer:
        """Quote the sentences that best match the search query (it carries a follow-up's earlier turns)."""
        return self.answer_now(request.search_query or request.question, request.passages)

    def answer_now(self, query: str, passages: Sequence[Passage]) -> Answer:
        """Synchronous core of `answer` (pure CPU, well under a millisecond)."""
        wanted = set(terms(query))
        candidates = self._candidates(wanted, passages)
        if not candidates:
            return Answer(text=NO_ANSWER, citations=[], model=MODEL_NAME, cost=0.0)
        best = candidates[0].score
        chosen = [c for c in candidates if c.score >= 0.5 * best][: self._max_sentences]
        cited: set[int] = set()
        citations: list[Citation] = []
        parts: list[str] = []
        for candidate in chosen:
            passage = passages[candidate.passage_index]
            n = candidate.passage_index + 1
            if n not in cited:
                cited.add(n)
                citations.append(citation_of(n, passage, candidate.text))
            parts.append(f"{candidate.text} [{n}]")
        citations.sort(key=lambda c: c["n"])
        return Answer(text=" ".join(parts), citations=citations, model=MODEL_NAME, cost=0.0)

    def _candidates(self, wanted: set[str], passages: Sequence[Passage]) -> list[_Candidate]:
        """Relevant sentences, best first; empty when no passage is relevant or no sentence shares a term."""
        split = [
            (i, position, sentence)
            for i, passage in enumerate(passages)
            if passage["score"] >= self._min_score
            for position, sentence in enumerate(sentences(passage["text"]))
            if _is_prose(sentence)
        ]
        if not split or not wanted:
            return []
        bags = [set(terms(sentence)) for _, _, sentence in split]
        document_frequency = Counter(term for bag in bags for term in bag)
        total = len(bags)
        idf = {t: math.log(1 + total / (1 + document_frequency[t])) for t in wanted}
        top_idf = sum(idf.values())
        scored: list[_Candidate] = []
        seen: set[str] = set()
        for (i, position, sentence), bag in zip(split, bags, strict=True):
            overlap = sum(idf[t] for t in wanted & bag)
            # At least a fifth of the question's weight must be present for a sentence to count as an answer.
            if overlap < 0.2 * top_idf or sentence in seen:
                continue
            seen.add(sentence)
            length_penalty = 1.0 if len(sentence) <= 300 else 300 / len(sentence)
            score = (overlap / top_idf + 0.5 * passages[i]["score"]) * length_penalty
            scored.append(_Candidate(i, position, sentence, score))
        scored.sort(key=lambda c: (-c.score, c.passage_index, c.position))
        return scored


def _is_prose(sentence: str) -> bool:
    """Headings and labels are not answers: keep real sentences, or long runs of words."""
    return len(sentence) >= 20 and (sentence[-1] in ".!?:;)\"'" or len(sentence.split()) >= 10)
