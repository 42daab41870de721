"""The output guardrail: answers are reviewed before they leave the server. A blocked pattern withholds the
answer; the optional PII pass takes e-mail addresses, phone numbers and card numbers out of it (and out of
the citations' snippets). Streams are reviewed as they go (`StreamReview`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.types import Citation

WITHHELD = "The answer was withheld: it matched one of this server's output rules."
"""What replaces an answer that a blocked output pattern matched."""

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13 to 19 digits, in groups separated by single spaces or dashes; a Luhn check tells a card from a number.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# International (+CC …, 8 to 15 digits) or North-American ((555) 123-4567, 555-123-4567, 555.123.4567)
# forms only: dates, years, amounts and table figures in a corpus must not read as phone numbers.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?)(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])"
)

PII_KINDS = ("email", "phone", "card")

HOLD_BACK_CHARS = 32
"""A stream under the PII pass sends text only once it is this far from the end of what the model has said
so far, and never in the middle of a word: long enough for a phone or card number split over tokens to be
seen whole before any of it is sent."""


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def withheld(rule: str | None) -> bool:
    """An answer's `output_rule` says a blocked pattern withheld it."""
    return rule is not None and rule.startswith("blocked: ")


@dataclass(frozen=True)
class Reviewed:
    """An answer after review: its text, the blocked pattern that withheld it or the kinds of personal data
    taken out of it (neither: it passed unchanged)."""

    text: str
    pattern: str | None = None
    redacted: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        """A blocked pattern withheld the answer."""
        return self.pattern is not None

    @property
    def rule(self) -> str | None:
        """The answer's `output_rule`: `blocked: <pattern>`, `redacted: email, phone`, or None."""
        if self.pattern is not None:
            return f"blocked: {self.pattern}"
        return f"redacted: {', '.join(self.redacted)}" if self.redacted else None


class OutputGuard:
    """Blocked output patterns (regular expressions, case-insensitive, compiled once) and the PII pass."""

    def __init__(self, patterns: Sequence[str], *, redact_pii: bool = False) -> None:
        compiled: list[re.Pattern[str]] = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise ValueError(
                    f"DOCENT_BLOCKED_OUTPUT_PATTERNS: {pattern!r} is not a valid regex: {exc}"
                ) from exc
        self._patterns = compiled
        self.redact_pii = redact_pii

    @property
    def active(self) -> bool:
        """Some rule is configured (else every answer passes untouched, at no cost)."""
        return bool(self._patterns) or self.redact_pii

    def blocked_by(self, text: str) -> str | None:
        """The first blocked pattern the text matches, or None."""
        for pattern in self._patterns:
            if pattern.search(text):
                return pattern.pattern
        return None

    def redact(self, text: str) -> tuple[str, list[str]]:
        """The text with personal data replaced by `[email removed]` and the like, and the kinds removed."""
        if not self.redact_pii:
            return text, []
        kinds: list[str] = []

        def card(match: re.Match[str]) -> str:
            digits = re.sub(r"\D", "", match.group())
            if not _luhn(digits):
                return match.group()
            kinds.append("card")
            return "[card removed]"

        def replaced(kind: str) -> Callable[[re.Match[str]], str]:
            def sub(_: re.Match[str]) -> str:
                kinds.append(kind)
                return f"[{kind} removed]"

            return sub

        text = _EMAIL.sub(replaced("email"), text)
        text = _CARD.sub(card, text)
        text = _PHONE.sub(replaced("phone"), text)
        return text, [kind for kind in PII_KINDS if kind in kinds]

    def review(self, text: str) -> Reviewed:
        """The answer as it may leave the server."""
        if (pattern := self.blocked_by(text)) is not None:
            return Reviewed(WITHHELD, pattern=pattern)
        redacted, kinds = self.redact(text)
        return Reviewed(redacted, redacted=tuple(kinds))

    def review_citations(self, citations: list[Citation], reviewed: Reviewed) -> list[Citation]:
        """The citations as they may leave with the reviewed answer: none is cited by a withheld answer, and
        the PII pass reaches their snippets too."""
        out: list[Citation] = []
        for citation in citations:
            changed = citation.copy()
            if reviewed.blocked:
                changed["cited"], changed["supported"] = False, None
            if self.redact_pii:
                changed["snippet"] = self.redact(citation["snippet"])[0]
            out.append(changed)
        return out


class StreamReview:
    """One streamed answer under review: `feed` each token's text and send what it returns; `finish` gives
    the rest. Once a blocked pattern matches, nothing more is sent (`blocked` names it): the turn's `end`
    carries the withheld answer. Under the PII pass, text is held back (HOLD_BACK_CHARS, whole words) until
    no personal data can still be forming in it."""

    def __init__(self, guard: OutputGuard) -> None:
        self._guard = guard
        self._raw = ""
        self._sent = 0
        self.blocked: str | None = None

    def feed(self, text: str) -> str:
        """What may be sent now of the answer so far, after `text` arrived."""
        if self.blocked is not None:
            return ""
        self._raw += text
        if (pattern := self._guard.blocked_by(self._raw)) is not None:
            self.blocked = pattern
            return ""
        if not self._guard.redact_pii:
            self._sent = len(self._raw)
            return text
        redacted, _ = self._guard.redact(self._raw)
        cut = len(redacted) - HOLD_BACK_CHARS
        while cut > self._sent and not redacted[cut - 1].isspace():
            cut -= 1
        if cut <= self._sent:
            return ""
        out, self._sent = redacted[self._sent : cut], cut
        return out

    def finish(self) -> str:
        """The held-back rest of the answer (nothing once blocked)."""
        if self.blocked is not None:
            return ""
        redacted = self._guard.redact(self._raw)[0] if self._guard.redact_pii else self._raw
        out, self._sent = redacted[self._sent :], len(redacted)
        return out
