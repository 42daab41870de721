"""Typed graph state, with the input and output schemas the API and LangGraph Studio show."""

from __future__ import annotations

from typing import Annotated

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from core.passages import Citation, Passage, Usage


class InputState(TypedDict):
    """One user turn."""

    message: str


class OutputState(TypedDict):
    """What a turn returns."""

    answer: str
    citations: list[Citation]
    model: str
    usage: Usage | None
    cost: float | None
    degraded: bool
    degraded_reason: str | None


class DocentState(InputState, OutputState):
    """Everything a thread carries; `messages` accumulates across turns through the checkpointer."""

    messages: Annotated[list[AnyMessage], add_messages]
    question: str
    search_query: str
    contexts: list[Passage]
    started_at: float
