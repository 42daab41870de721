"""Paraphrase pairs for the answer cache's threshold (core/answering/cache.py), built from SQuAD questions by
rules, and the cache-shaped evaluation over them (bench/answer_cache.py runs it; docs/cache.md has the
figures).

Positives are rule-made paraphrases of a question: "What is X?" as "Tell me X", a polite opening or closing,
a synonym, a phrase moved to the front, a filler word dropped or added, a contraction, case and punctuation.
Each paraphrase applies two rules (seeded). Negatives are the *other* questions about the same paragraph:
the same topic and many of the same words, but another answer, which a cache must not serve.

The evaluation is shaped like the cache: one question per paragraph is cached; each paraphrase of a cached
question should find its original (a hit), and each other question of a paragraph should find nothing at the
threshold (any hit is a false one, whichever entry it finds).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluation.dataset import read_jsonl

Rule = Callable[[str], str | None]

_WH = ("what", "when", "where", "who", "whom", "which", "why", "how")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if not text[:2].isupper() else text


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


_AUXILIARIES = (
    "is",
    "was",
    "are",
    "were",
    "did",
    "does",
    "do",
    "has",
    "have",
    "had",
    "can",
    "could",
    "would",
)


def _body(question: str) -> str:
    """The question without its closing question mark or full stop (and spaces)."""
    return question.strip().rstrip("?.").rstrip()


def tell_me(question: str) -> str | None:
    """ "What is/was/are the X?" as "Tell me the X." ("what is" → "tell me")."""
    found = re.match(
        r"(?i)^what(?:'s| is| was| are| were)\s+((?:the|a|an|one|his|her|its|their)\s.+?)\s*[?.]*$",
        question.strip(),
    )
    if found is None:
        return None
    return f"Tell me {found.group(1)}."


def polite_opening(question: str, pick: random.Random) -> str | None:
    """A polite or chatty opening before the question (before a request, "Please")."""
    if question.split(" ", 1)[0].lower() not in (*_WH, *_AUXILIARIES):
        return "Please " + _lower_first(question.strip())
    opening = pick.choice(("Can you tell me ", "Do you know ", "I'd like to know: ", "Quick question: "))
    return opening + _lower_first(question.strip())


def closing_filler(question: str, pick: random.Random) -> str | None:
    """A filler after the question."""
    return _body(question) + pick.choice((", please?", "? Thanks.", ", if you know?", "? I'm curious."))


SYNONYMS = {
    "begin": "start",
    "began": "started",
    "start": "begin",
    "started": "began",
    "big": "large",
    "large": "big",
    "built": "constructed",
    "used": "utilized",
    "use": "utilize",
    "called": "named",
    "named": "called",
    "important": "significant",
    "main": "primary",
    "primary": "main",
    "end": "finish",
    "ended": "finished",
    "kind": "type",
    "type": "kind",
    "city": "town",
    "country": "nation",
    "located": "situated",
    "purpose": "aim",
    "reason": "cause",
    "happen": "occur",
    "happened": "occurred",
    "occurred": "happened",
    "famous": "well-known",
    "receive": "get",
    "received": "got",
    "allowed": "permitted",
    "help": "assist",
    "helped": "assisted",
    "biggest": "largest",
    "largest": "biggest",
    "often": "frequently",
    "method": "way",
    "amount": "quantity",
    "common": "usual",
    "major": "main",
}


def synonym(question: str, pick: random.Random) -> str | None:
    """One word replaced by a synonym (case kept)."""
    words = question.split(" ")
    spots = [n for n, w in enumerate(words) if re.sub(r"\W", "", w).lower() in SYNONYMS]
    if not spots:
        return None
    n = pick.choice(spots)
    word = words[n]
    core = re.sub(r"\W", "", word)
    swap = SYNONYMS[core.lower()]
    if core[:1].isupper():
        swap = _upper_first(swap)
    words[n] = word.replace(core, swap)
    return " ".join(words)


def move_phrase(question: str) -> str | None:
    """A short closing phrase ("in 1973", "during the war") moved to the front, or two clauses swapped."""
    body = _body(question)
    if ", " in body:
        head, tail = body.split(", ", 1)
        return f"{_upper_first(tail)}, {_lower_first(head)}?"
    found = re.match(r"^(.+?) ((?:in|during|after|before|by) (?:\S+ )?\S+)$", body)
    if found is None or len(found.group(1).split()) < 3:
        return None
    return f"{_upper_first(found.group(2))}, {_lower_first(found.group(1))}?"


def drop_filler(question: str) -> str | None:
    """One filler word ("the", "exactly", "actually", "also") left out."""
    found = re.search(r"(?i)\b(the|exactly|actually|also|just) ", question)
    if found is None:
        return None
    dropped = question[: found.start()] + question[found.end() :]
    return _upper_first(dropped)


def add_filler(question: str, pick: random.Random) -> str | None:
    """A filler word after the opening question word ("What exactly was ...")."""
    words = question.strip().split(" ")
    if len(words) < 3 or words[0].lower() not in _WH or words[1].lower() not in _AUXILIARIES:
        return None
    return " ".join([words[0], pick.choice(("exactly", "actually", "roughly")), *words[1:]])


CONTRACTIONS = (
    ("What is", "What's"),
    ("Who is", "Who's"),
    ("Where is", "Where's"),
    ("did not", "didn't"),
    ("does not", "doesn't"),
    ("was not", "wasn't"),
    ("What's", "What is"),
)


def contraction(question: str) -> str | None:
    """A contraction made or undone."""
    for long, short in CONTRACTIONS:
        if long in question:
            return question.replace(long, short, 1)
    return None


def case_and_punctuation(question: str) -> str | None:
    """Lower case, no question mark: how people type into a search box."""
    return _body(question).lower()


def rules(pick: random.Random) -> dict[str, Rule]:
    """Every rule by name, those with a choice drawing from `pick`, in the order they are applied: those
    that rework the question's words first, then those that dress it."""
    return {
        "tell_me": tell_me,
        "move_phrase": move_phrase,
        "synonym": lambda q: synonym(q, pick),
        "contraction": contraction,
        "drop_filler": drop_filler,
        "add_filler": lambda q: add_filler(q, pick),
        "polite_opening": lambda q: polite_opening(q, pick),
        "closing_filler": lambda q: closing_filler(q, pick),
        "case_and_punctuation": case_and_punctuation,
    }


DRESSING = ("polite_opening", "closing_filler", "case_and_punctuation")
"""The rules that leave the question's own words as they are."""


@dataclass(frozen=True)
class Paraphrase:
    """A question rewritten by `applied` rules, in order."""

    original: str
    text: str
    applied: tuple[str, ...]


def paraphrase(question: str, pick: random.Random, steps: int = 2) -> Paraphrase:
    """`question` rewritten by `steps` rules drawn at random among those that apply to it, one of them
    reworking its words where one can (fewer when fewer apply; case and punctuation, which changes the least,
    only to make up the number), applied in the table's order; never the question itself."""
    table = rules(pick)
    usable = [n for n in table if n != "case_and_punctuation" and table[n](question) not in (None, question)]
    rework = [n for n in usable if n not in DRESSING]
    chosen = {pick.choice(rework)} if rework else set()  # one rule that changes the words, where one applies
    rest = [n for n in usable if n not in chosen]
    chosen |= set(pick.sample(rest, min(steps - len(chosen), len(rest))))
    if {"add_filler", "drop_filler"} <= chosen:  # the one could undo the other
        chosen.discard("drop_filler")
    text, applied = question, list[str]()
    for name in table:
        if name in chosen or (name == "case_and_punctuation" and len(applied) < steps):
            changed = table[name](text)
            if changed and changed != text:
                text, applied = changed, [*applied, name]
    return Paraphrase(question, text, tuple(applied))


@dataclass(frozen=True)
class CacheCase:
    """One paragraph: the question the cache holds, paraphrases of it (should hit it) and the paragraph's
    other questions (should hit nothing)."""

    para_id: str
    cached: str
    paraphrases: tuple[Paraphrase, ...]
    others: tuple[str, ...]


def cache_cases(
    path: Path, *, seed: int = 0, paragraphs: int | None = None, per_question: int = 2
) -> list[CacheCase]:
    """The cases of a SQuAD-style JSONL (`question`, `para_id`): paragraphs with at least two questions, in
    file order (`paragraphs`: the first that many), each with `per_question` paraphrases of its first."""
    by_paragraph: dict[str, list[str]] = {}
    for _where, item in read_jsonl(path):
        question, para = str(item.get("question", "")).strip(), str(item.get("para_id", ""))
        if question and para:
            by_paragraph.setdefault(para, []).append(question)
    pick = random.Random(seed)
    cases: list[CacheCase] = []
    for para, questions in by_paragraph.items():
        unique = list(dict.fromkeys(questions))
        if len(unique) < 2:
            continue
        first, others = unique[0], tuple(unique[1:])
        made = tuple(paraphrase(first, pick) for _ in range(per_question))
        cases.append(CacheCase(para, first, made, others))
        if paragraphs is not None and len(cases) == paragraphs:
            break
    return cases


@dataclass(frozen=True)
class ThresholdScore:
    """How the cache does at one threshold."""

    threshold: float
    hit_rate: float
    """Paraphrases served their own original's answer, over all paraphrases."""
    precision: float
    """Right hits over all hits (a paraphrase that found another entry, or another question that found any,
    is a wrong hit); 1.0 when nothing hit."""
    right_hits: int
    wrong_hits: int
    other_hit_rate: float
    """The paragraphs' other questions that hit something, over all of them."""


def score(
    positives: Sequence[tuple[float, bool, bool]],
    negatives: Sequence[tuple[float, bool]],
    thresholds: Sequence[float],
) -> list[ThresholdScore]:
    """Scores per threshold from each paraphrase's best similarity, whether that best entry was its own
    original and whether the cache's word check lets it serve (core.answering.cache.same_ask), and each
    other question's best similarity and word check."""
    scores = []
    for t in thresholds:
        right = sum(1 for s, own, ok in positives if s >= t and own and ok)
        wrong_positive = sum(1 for s, own, ok in positives if s >= t and not own and ok)
        wrong_other = sum(1 for s, ok in negatives if s >= t and ok)
        hits = right + wrong_positive + wrong_other
        scores.append(
            ThresholdScore(
                threshold=round(t, 4),
                hit_rate=right / len(positives) if positives else 0.0,
                precision=right / hits if hits else 1.0,
                right_hits=right,
                wrong_hits=wrong_positive + wrong_other,
                other_hit_rate=wrong_other / len(negatives) if negatives else 0.0,
            )
        )
    return scores
