"""Citations and their checks: the sentences of a passage (headings kept apart), the claims of an answer with
the `[n]` each carries, the citation list every answerer returns, and the check that a cited passage
supports the sentence that cites it (term overlap plus embedding similarity, thresholds measured in
docs/models.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.retrieval.embedders import Embedder
from core.text import sentences, squash, terms
from core.types import Citation, Passage, citation_of

CITATION = re.compile(r"\[(\d{1,3})\]")
_MARKERS_AFTER_END = re.compile(r"([.!?])((?:\s*\[\d{1,3}\])+)")
_LINE_END = re.compile(r"[.!?:;,)\"'\]]$")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_BLANK_LINE = re.compile(r"\n\s*\n")
_ABBREVIATION = re.compile(
    r"(?:^|[\s(])(?:[A-Z]|St|Mt|Ft|Mr|Mrs|Ms|Dr|Prof|Jr|Sr|Gen|Gov|Sen|Rep|Rev|Co|Corp|Inc|Ltd|No|Nos|vs|Fig"
    r"|approx|etc|e\.g|i\.e|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.$"
)
WRAPPED_LINE = 0.6
"""A line without closing punctuation shorter than this share of its block's widest line ends a unit (a
heading, a label, a table row); a longer one is prose wrapped onto the next line (PDF text)."""


def passage_sentences(text: str) -> list[str]:
    """A passage's sentences, never gluing a heading (or a label, a table row, a footer) to the sentence
    after it: blocks split at blank lines, then at short lines without closing punctuation, then at
    sentence ends."""
    units: list[str] = []
    for block in _BLANK_LINE.split(text):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        widest = max(len(line) for line in lines)
        current: list[str] = []
        for line in lines:
            current.append(line)
            if not _LINE_END.search(line) and len(line) < WRAPPED_LINE * widest:
                units.append(" ".join(current))
                current = []
        if current:
            units.append(" ".join(current))
    return [s for unit in units for s in _rejoin_abbreviations(sentences(unit))]


def _rejoin_abbreviations(pieces: list[str]) -> list[str]:
    """Pieces the splitter cut after an abbreviation or an initial (`St. Johns`, `J. Smith`), joined again."""
    joined: list[str] = []
    for piece in pieces:
        if joined and _ABBREVIATION.search(joined[-1]):
            joined[-1] = f"{joined[-1]} {piece}"
        else:
            joined.append(piece)
    return joined


def is_prose(sentence: str) -> bool:
    """Headings and labels are not answers: keep real sentences, or long runs of words."""
    return len(sentence) >= 20 and (sentence[-1] in ".!?:;)\"'" or len(sentence.split()) >= 10)


def term_weight_match(term: str, bag: Collection[str]) -> float:
    """How well `term` (a stem) is found in `bag`: 1 as it is; 0.9 when a word of `bag` is the same stem
    but for one or two trailing letters (`smelly`/`smell`); 0.5 when one is a longer prefix of the other
    (`fermentation`/`ferment`, the shorter of 4 letters or more); else 0."""
    if term in bag:
        return 1.0
    if len(term) < 4 or term.isdigit():
        return 0.0
    best = 0.0
    for other in bag:
        shorter, longer = (term, other) if len(term) <= len(other) else (other, term)
        if len(shorter) >= 4 and longer.startswith(shorter) and not other.isdigit():
            if len(longer) - len(shorter) <= 2:
                return 0.9
            best = 0.5
    return best


# -- Claims of an answer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One sentence of an answer, without its markers, and the passage numbers it cites."""

    text: str
    cites: tuple[int, ...]


def answer_claims(text: str) -> list[Claim]:
    """The answer's sentences, each with the `[n]` it carries (markers after a sentence's full stop belong to
    that sentence, as models write `… 5 days. [1] Next…`)."""
    moved = _MARKERS_AFTER_END.sub(lambda m: f"{m.group(2)}{m.group(1)}", text)
    claims: list[Claim] = []
    for sentence in passage_sentences(moved):
        cites = tuple(dict.fromkeys(int(n) for n in CITATION.findall(sentence)))
        bare = squash(CITATION.sub(" ", sentence)).replace(" .", ".").replace(" ,", ",")
        if bare.strip(" .!?"):
            claims.append(Claim(bare, cites))
        elif claims and cites:  # a marker left alone (`… [2]` on its own): it belongs to the sentence before
            last = claims[-1]
            claims[-1] = Claim(last.text, tuple(dict.fromkeys((*last.cites, *cites))))
    return claims


def cited_numbers(text: str, count: int) -> list[int]:
    """The passage numbers the text cites as `[n]`, ascending (numbers outside 1..count ignored)."""
    return sorted({int(n) for n in CITATION.findall(text) if 1 <= int(n) <= count})


# -- The citation list --------------------------------------------------------------------------------------


def list_citations(
    passages: Sequence[Passage],
    *,
    min_score: float,
    cited: Collection[int] = (),
    quotes: Mapping[int, str] | None = None,
    supported: Mapping[int, bool] | None = None,
) -> list[Citation]:
    """Every passage the answerer was given that cleared `min_score` (and any it cites below it), in
    retrieval order, numbered `n` as the prompt numbers them (1-based, so numbers skip a dropped passage).
    `quotes[n]` is the snippet (default: the passage's opening); `supported[n]` the check's verdict (default:
    None, not checked)."""
    quotes = quotes or {}
    supported = supported or {}
    return [
        citation_of(
            n, passage, quotes.get(n), cited=n in cited, supported=supported.get(n) if n in cited else None
        )
        for n, passage in enumerate(passages, start=1)
        if passage["score"] >= min_score or n in cited
    ]


# -- Support checks ---------------------------------------------------------------------------------------

LEXICAL_WEIGHT = 0.5
"""Share of term overlap in the support score; the rest is embedding similarity."""
SUPPORT_THRESHOLD = 0.5
"""Support score at or above which a passage supports a sentence (measured on SQuAD dev: docs/models.md)."""
MAX_PASSAGE_SENTENCES = 24
"""Sentences of one passage compared with a claim at most (its first ones)."""


@dataclass(frozen=True)
class SupportCheck:
    """The verdicts for one answer: for each cited passage, whether a sentence citing it is supported by it,
    and how many cited sentences none of their passages supports."""

    supported: dict[int, bool]
    unsupported_sentences: int
    scores: tuple[tuple[str, int, float], ...] = ()
    """(sentence, passage n, score) of every pair checked, for diagnostics and measurement."""


def numbers_of(text: str) -> set[str]:
    """The figures a text states (`3`, `1,234`, `4.5`)."""
    return set(_NUMBER.findall(text))


def lexical_support(claim: str, passage_terms: Collection[str], passage_numbers: Collection[str]) -> float:
    """Share of the claim's content terms found in the passage (half for a stem-prefix match); 0 when the
    claim states a number the passage does not contain (a figure the passage cannot support)."""
    wanted = list(dict.fromkeys(terms(claim)))
    if not wanted:
        return 0.0
    if any(number not in passage_numbers for number in _NUMBER.findall(claim)):
        return 0.0
    return sum(term_weight_match(t, passage_terms) for t in wanted) / len(wanted)


def support_score(lexical: float, dense: float) -> float:
    """The support score of a (sentence, passage) pair: term overlap and best sentence similarity, mixed."""
    return LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * dense


class SupportChecker:
    """Checks each cited sentence of an answer against the passages it cites (blocking CPU: the embedder
    runs once per answer, on the claims and the cited passages' sentences together)."""

    def __init__(self, embedder: Embedder, *, threshold: float = SUPPORT_THRESHOLD) -> None:
        self._embedder = embedder
        self._threshold = threshold

    def check(self, text: str, passages: Sequence[Passage]) -> SupportCheck:
        """Verdicts for the answer `text` written from `passages` (cited as `[n]`, 1-based)."""
        claims = [
            (claim.text, [n for n in claim.cites if 1 <= n <= len(passages)]) for claim in answer_claims(text)
        ]
        claims = [(claim, cites) for claim, cites in claims if cites]
        if not claims:
            return SupportCheck({}, 0)
        numbers = sorted({n for _, cites in claims for n in cites})
        split = {n: passage_sentences(passages[n - 1]["text"])[:MAX_PASSAGE_SENTENCES] for n in numbers}
        texts = [claim for claim, _ in claims] + [s for n in numbers for s in split[n]]
        vectors = self._embedder.embed(texts)
        claim_vectors, offset = vectors[: len(claims)], len(claims)
        rows: dict[int, np.ndarray] = {}
        for n in numbers:
            rows[n] = vectors[offset : offset + len(split[n])]
            offset += len(split[n])
        bags = {n: set(terms(passages[n - 1]["text"])) for n in numbers}
        figures = {n: numbers_of(passages[n - 1]["text"]) for n in numbers}
        supported = dict.fromkeys(numbers, False)
        unsupported = 0
        scores: list[tuple[str, int, float]] = []
        for (claim, cites), vector in zip(claims, claim_vectors, strict=True):
            backed = False
            for n in cites:
                dense = float(np.max(rows[n] @ vector)) if len(rows[n]) else 0.0
                score = support_score(lexical_support(claim, bags[n], figures[n]), dense)
                scores.append((claim, n, score))
                if score >= self._threshold:
                    supported[n] = backed = True
            unsupported += not backed
        return SupportCheck(supported, unsupported, tuple(scores))
