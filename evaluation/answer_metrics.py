"""Answer metrics against gold answer texts: SQuAD-style normalisation, exact match, token F1, the shortest
answering span, and containment.

An answer is scored after its citation markers (`[1]`, `[1, 2]`) are removed. The *shortest answering span*
is the contiguous run of the answer's tokens with the highest token F1 against a gold answer (the shortest
such run on a tie): the part of the answer a reader would point at. Its F1 is the best any cut of the answer
reaches, so a long answer that holds the gold scores well on it; the whole-answer F1 and the answer length
are reported beside it for that reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_CITATION_MARK = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def strip_citations(answer: str) -> str:
    """The answer without its `[n]` citation markers."""
    return _CITATION_MARK.sub("", answer)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, punctuation removed (any Unicode punctuation, not only ASCII), the
    articles a/an/the removed, whitespace collapsed."""
    lowered = text.lower()
    unpunctuated = "".join(ch for ch in lowered if not unicodedata.category(ch).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", unpunctuated).split())


def answer_tokens(text: str) -> list[str]:
    """The normalised tokens of a text."""
    return normalize_answer(text).split()


def token_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Harmonic mean of token precision and recall (bags of tokens); 1.0 when both are empty."""
    if not predicted or not gold:
        return float(list(predicted) == list(gold))
    overlap = sum((Counter(predicted) & Counter(gold)).values())
    return 2 * overlap / (len(predicted) + len(gold))


@dataclass(frozen=True)
class Span:
    """A contiguous run of answer tokens, `tokens[start:end]`, and its token F1 against one gold answer."""

    start: int
    end: int
    f1: float


def shortest_answering_span(tokens: Sequence[str], gold: Sequence[str]) -> Span:
    """The run of `tokens` with the highest F1 against `gold`, the shortest on a tie (then the earliest).

    The best run starts and ends on tokens of the gold (trimming any other token at an edge raises precision
    and keeps recall), so only those runs are tried, each extended token by token: O(len(tokens)²) at worst.
    An answer sharing no token with the gold gives an empty span with F1 0.
    """
    wanted = Counter(gold)
    best = Span(0, 0, 0.0)
    for start, token in enumerate(tokens):
        if token not in wanted:
            continue
        seen: Counter[str] = Counter()
        overlap = 0
        for end in range(start, len(tokens)):
            length = end - start + 1
            if 2 * len(gold) / (length + len(gold)) < best.f1:
                break  # even a perfect recall cannot beat the best run from here on
            current = tokens[end]
            if seen[current] < wanted[current]:
                overlap += 1
            seen[current] += 1
            if current not in wanted:
                continue
            f1 = 2 * overlap / (length + len(gold))
            if f1 > best.f1 or (f1 == best.f1 and length < best.end - best.start):
                best = Span(start, end + 1, f1)
    return best


@dataclass(frozen=True)
class AnswerMatch:
    """An answer against its gold answers: each figure is the best over the golds (SQuAD's rule)."""

    exact_match: float
    """1.0 when the shortest answering span is a gold answer, token for token."""
    span_f1: float
    """Token F1 of the shortest answering span."""
    answer_f1: float
    """Token F1 of the whole answer."""
    contains_gold: bool
    """A normalised gold answer occurs in the normalised answer, on word boundaries."""


def match_answer(answer: str, golds: Sequence[str]) -> AnswerMatch:
    """Score one answer (citation markers removed) against its gold answers (at least one)."""
    if not golds:
        raise ValueError("match_answer needs at least one gold answer")
    tokens = answer_tokens(strip_citations(answer))
    gold_tokens = [answer_tokens(gold) for gold in golds]
    spans = [shortest_answering_span(tokens, gold) for gold in gold_tokens]
    return AnswerMatch(
        exact_match=max(
            float(bool(gold) and list(tokens[s.start : s.end]) == gold)
            for s, gold in zip(spans, gold_tokens, strict=True)
        ),
        span_f1=max(span.f1 for span in spans),
        answer_f1=max(token_f1(tokens, gold) for gold in gold_tokens),
        contains_gold=any(contains(tokens, gold) for gold in gold_tokens),
    )


def contains(tokens: Sequence[str], gold: Sequence[str]) -> bool:
    """Whether the normalised gold occurs in the normalised text as whole words (an empty gold never does)."""
    return bool(gold) and f" {' '.join(gold)} " in f" {' '.join(tokens)} "


def word_count(answer: str) -> int:
    """Words of the answer as a reader sees them (citation markers left out)."""
    return len(strip_citations(answer).split())
