"""The input guardrail (the seeds' sensitive-word filter): a question matching a pattern is refused."""

from __future__ import annotations

import re


class Guardrail:
    """Blocked patterns (regular expressions, case-insensitive), compiled once."""

    def __init__(self, patterns: list[str]) -> None:
        compiled: list[re.Pattern[str]] = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise ValueError(f"DOCENT_BLOCKED_PATTERNS: {pattern!r} is not a valid regex: {exc}") from exc
        self._patterns = compiled

    def blocked_by(self, text: str) -> str | None:
        """The first pattern the text matches, or None when it may pass."""
        for pattern in self._patterns:
            if pattern.search(text):
                return pattern.pattern
        return None
