"""The no-model answerer: quotes the retrieved sentences that best answer the question, with citations.

Each sentence of the relevant passages (headings kept apart) is scored by the question terms it shares (in
the sentence, its heading or its document's title), IDF-weighted over those sentences, with the question's
focus terms weighted up; the best few by that score are embedded with the question in one batch and
rescored with their cosine similarity. Those close to the best are quoted in passage order; when even the
best scores under a measured floor, the answer says that the documents do not contain it. Design and
measurements: docs/models.md.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.answering.base import AnswerRequest
from core.answering.support import is_prose, list_citations, passage_sentences, term_weight_match
from core.retrieval.embedders import Embedder
from core.text import STOPWORDS, terms
from core.tracing import span
from core.types import Answer, Passage

NO_ANSWER = "I could not find anything about that in the ingested documents."
MODEL_NAME = "extractive"

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'.,%-]*")
_WH = frozenset(["what", "which", "who", "whom", "whose", "when", "where", "why", "how"])
_NOUN_ASKING = frozenset(["what", "which", "whose"])
HEADING_WORDS = 12
"""A line of at most this many words, without closing punctuation, is a heading for the sentences below."""


@dataclass(frozen=True)
class Scoring:
    """The answerer's knobs; the defaults were measured on SQuAD dev (docs/models.md)."""

    focus_weight: float = 1.5
    """Weight of a focus term (a name, a number, the noun a wh-word asks about) against 1 for the others."""
    context_weight: float = 0.5
    """Weight of a term that only the search query's earlier turns carry (a follow-up's context)."""
    heading_weight: float = 1.0
    """Weight of a question term found not in the sentence but in the heading above it (or the passage's
    section) or in its document's title: the sentence's context."""
    lexical_floor: float = 0.1
    """Share of the question's term weight a sentence must carry to be a candidate at all."""
    candidates: int = 8
    """Sentences embedded per answer at most: the best by term overlap."""
    dense_weight: float = 0.5
    """Weight of the cosine between the question and `heading: sentence`, beside term overlap (weight 1)."""
    passage_weight: float = 0.5
    """Weight of the passage's own retrieval score (its cosine to the query)."""
    keep_ratio: float = 0.75
    """A sentence after the best is quoted when it scores at least this share of the best."""
    floor: float = 0.6
    """The best sentence's score under which the documents are taken not to hold the answer."""
    floor_without_embedder: float = 0.45
    """The same floor when no embedder is given (the score then has no cosine part)."""
    long_sentence: int = 300
    """Characters past which a sentence's score is scaled down (long ones dilute an answer)."""


@dataclass(frozen=True)
class _Candidate:
    passage_index: int
    position: int
    text: str
    lexical: float
    score: float
    heading: str = ""


class ExtractiveAnswerer:
    """Quotes the best one to `max_sentences` sentences of the passages scoring at least `min_score`, each
    followed by its `[n]`. `embedder` (the configured one, loaded once by the composition root) adds dense
    similarity; without it sentences are ranked by term overlap alone."""

    def __init__(
        self,
        *,
        max_sentences: int = 3,
        min_score: float = 0.2,
        embedder: Embedder | None = None,
        scoring: Scoring | None = None,
    ) -> None:
        self._max_sentences = max_sentences
        self._min_score = min_score
        self._embedder = embedder
        self._scoring = scoring or Scoring()

    @property
    def model(self) -> str:
        """Reported as `model` in every output."""
        return MODEL_NAME

    async def answer(self, request: AnswerRequest) -> Answer:
        """Quote the sentences that best match the question (the search query adds a follow-up's earlier
        turns); the embedder runs in a worker thread."""
        query = request.search_query or request.question
        with span(
            "extractive answer", {"docent.model": MODEL_NAME, "docent.passages": len(request.passages)}
        ):
            if self._embedder is None:
                return self.answer_now(query, request.passages, question=request.question)
            return await asyncio.to_thread(
                self.answer_now, query, request.passages, question=request.question
            )

    def answer_now(self, query: str, passages: Sequence[Passage], *, question: str | None = None) -> Answer:
        """Synchronous core of `answer` (blocking: with an embedder it embeds up to `candidates` sentences).
        `question`: the latest message, when `query` also carries earlier turns."""
        candidates = self._candidates(query, question or query, passages)
        chosen = self._choose(candidates)
        quotes: dict[int, list[str]] = {}
        for candidate in chosen:
            quotes.setdefault(candidate.passage_index + 1, []).append(candidate.text)
        citations = list_citations(
            passages,
            min_score=self._min_score,
            cited=quotes,
            quotes={n: " … ".join(texts) for n, texts in quotes.items()},
            supported=dict.fromkeys(quotes, True),
        )
        if not chosen:
            return Answer(
                text=NO_ANSWER, citations=citations, model=MODEL_NAME, cost=0.0, unsupported_sentences=0
            )
        text = " ".join(f"{c.text} [{c.passage_index + 1}]" for c in chosen)
        return Answer(text=text, citations=citations, model=MODEL_NAME, cost=0.0, unsupported_sentences=0)

    def _choose(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """The best sentence and those close to it, at most `max_sentences`, in passage order (the passage
        of the best sentence first, each passage's sentences in their own order); none when the best is
        under the floor."""
        if not candidates:
            return []
        best = candidates[0].score
        floor = self._scoring.floor if self._embedder is not None else self._scoring.floor_without_embedder
        if best < floor:
            return []
        kept = [c for c in candidates if c.score >= self._scoring.keep_ratio * best][: self._max_sentences]
        rank = {c.passage_index: r for r, c in reversed(list(enumerate(kept)))}
        return sorted(kept, key=lambda c: (rank[c.passage_index], c.position))

    def _candidates(self, query: str, question: str, passages: Sequence[Passage]) -> list[_Candidate]:
        """Relevant sentences that share enough of the question's terms, best first."""
        split = [
            (i, position, heading, sentence)
            for i, passage in enumerate(passages)
            if passage["score"] >= self._min_score
            for position, (heading, sentence) in enumerate(headed_sentences(passage))
        ]
        weights = self._term_weights(query, question, [set(terms(s)) for _, _, _, s in split])
        if not split or not weights:
            return []
        total = sum(weights.values())
        scoring = self._scoring
        lexical: list[_Candidate] = []
        seen: set[str] = set()
        for i, position, heading, sentence in split:
            if sentence in seen:
                continue
            seen.add(sentence)
            sentence_terms = terms(sentence)
            bag, above = set(sentence_terms), set(terms(f"{heading} {passages[i]['title']}"))
            overlap = (
                sum(
                    w * max(term_weight_match(t, bag), scoring.heading_weight * term_weight_match(t, above))
                    for t, w in weights.items()
                )
                / total
            )
            if overlap < scoring.lexical_floor:
                continue
            candidate = _Candidate(i, position, sentence, overlap, 0.0, heading)
            lexical.append(replace(candidate, score=self._score(candidate, passages, 0.0)))
        lexical.sort(key=lambda c: (-c.score, c.passage_index, c.position))
        if self._embedder is None or not lexical:
            return lexical
        pool = lexical[: scoring.candidates]
        texts = [f"{c.heading}: {c.text}" if c.heading else c.text for c in pool]
        vectors = self._embedder.embed([query, *texts])
        similarity = vectors[1:] @ vectors[0]
        rescored = [
            replace(c, score=self._score(c, passages, float(cosine)))
            for c, cosine in zip(pool, similarity, strict=True)
        ]
        rescored.sort(key=lambda c: (-c.score, c.passage_index, c.position))
        return rescored

    def _score(self, candidate: _Candidate, passages: Sequence[Passage], cosine: float) -> float:
        """Term overlap, the cosine to the question and the passage's retrieval score; long sentences are
        scaled down."""
        scoring = self._scoring
        length = len(candidate.text)
        scale = 1.0 if length <= scoring.long_sentence else scoring.long_sentence / length
        passage_score = passages[candidate.passage_index]["score"]
        return (
            candidate.lexical + scoring.dense_weight * cosine + scoring.passage_weight * passage_score
        ) * scale

    def _term_weights(self, query: str, question: str, bags: Sequence[set[str]]) -> dict[str, float]:
        """Each query term's weight: its IDF over the candidate sentences, weighted up for a focus term of
        the question, down for a term only earlier turns carry."""
        asked = set(terms(question))
        focus = focus_terms(question)
        frequency = Counter(t for bag in bags for t in bag)
        total = len(bags)
        weights: dict[str, float] = {}
        for term in dict.fromkeys(terms(query)):
            weight = math.log(1 + total / (1 + frequency[term]))
            if term in focus:
                weight *= self._scoring.focus_weight
            elif term not in asked:
                weight *= self._scoring.context_weight
            weights[term] = weight
        return weights


def focus_terms(question: str) -> set[str]:
    """The question's focus terms: names and numbers (capitalised words past the first, digits), and the noun
    a wh-word asks about (`temperature` in "What temperature should …?", `team` in "Which team won?",
    `bucket` in "How many buckets …?"; none in "What is …?" or "How do I …?")."""
    words = _WORD.findall(question)
    lowered = [w.lower().strip("'.,") for w in words]
    focus: set[str] = set()
    for position, (word, lower) in enumerate(zip(words, lowered, strict=True)):
        if (
            lower
            and lower not in STOPWORDS
            and ((position > 0 and word[0].isupper()) or any(ch.isdigit() for ch in word))
        ):
            focus.update(terms(lower))
    for position, word in enumerate(lowered):
        if word in _WH:
            following = lowered[position + 1 : position + 3]
            if word == "how" and following[:1] in (["many"], ["much"]):
                following = following[1:]
            elif word not in _NOUN_ASKING:
                break
            if following and following[0] and following[0] not in STOPWORDS:
                focus.update(terms(following[0]))
            break
    return focus


def headed_sentences(passage: Passage) -> list[tuple[str, str]]:
    """The passage's prose sentences, each with the heading above it (a short unpunctuated line), or the
    passage's section for those before any."""
    heading = passage["section"] or ""
    found: list[tuple[str, str]] = []
    for sentence in passage_sentences(passage["text"]):
        if is_prose(sentence):
            found.append((heading, sentence))
        elif len(sentence.split()) <= HEADING_WORDS and sentence[-1] not in ".!?;,":
            heading = sentence
    return found
