"""The answering seam: every answerer (extractive or an LLM) turns passages into an Answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from core.passages import Citation, Passage, Usage


@dataclass(frozen=True)
class Answer:
    """An answer with the citations its `[n]` markers refer to, and what produced it."""

    text: str
    citations: list[Citation]
    model: str
    usage: Usage | None = None
    cost: float | None = None
    """USD from the price table; 0 for models run here; None when the model has no price."""
    degraded: bool = False
    """The chosen model failed and a fallback (another model, or at last the extractive answerer) answered."""
    degraded_reason: str | None = None
    interrupted: bool = False
    """A model failed after part of its answer had been streamed; `text` replaces what was streamed."""
    requested_at: float | None = None
    """When (`time.perf_counter()`, this process) the model request was issued; None without a model."""
    first_chunk_at: float | None = None
    """When the model's first content chunk arrived (its own time to first token, as seen in-process)."""


Role = Literal["user", "assistant"]


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
