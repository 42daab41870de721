"""The answering seam: every answerer (extractive or an LLM) turns passages into an Answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.types import Answer, Passage, Role


@dataclass(frozen=True)
class AnswerRequest:
    """One turn to answer: passage i is cited as `[i+1]`; `history` holds earlier (role, text), oldest
    first."""

    question: str
    search_query: str
    passages: Sequence[Passage]
    history: Sequence[tuple[Role, str]] = ()


class Answerer(Protocol):
    """Turns a question and its retrieved passages into a cited answer."""

    @property
    def model(self) -> str:
        """The name every output reports as `model`."""
        ...

    async def answer(self, request: AnswerRequest) -> Answer:
        """Answer from the passages only."""
        ...
