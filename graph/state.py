"""Typed graph state, with the input and output schemas the API and LangGraph Studio show."""

from __future__ import annotations

from typing import Annotated, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from core.types import AnswerFields, Passage, PriorMessage


class InputState(TypedDict):
    """One user turn; `history` seeds a new thread with a conversation held by the client."""

    message: str
    history: NotRequired[list[PriorMessage]]


class OutputState(AnswerFields):
    """What a turn returns: the answer's fields (core.types.AnswerFields)."""


class DocentState(InputState, OutputState):
    """Everything a thread carries; `messages` accumulates across turns through the checkpointer."""

    messages: Annotated[list[AnyMessage], add_messages]
    question: str
    search_query: str
    contexts: list[Passage]
    started_at: float
    model_ms: float
    """Wall time of the turn's answerer call (retries and fallbacks included), from summarize."""
