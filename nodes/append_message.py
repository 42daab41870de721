"""Node 1: add the user's message to the thread and start the turn's clock."""

from __future__ import annotations

import time
from typing import Any, NotRequired

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from typing_extensions import TypedDict

from core.types import PriorMessage


class AppendMessageInput(TypedDict):
    """The incoming user message, and any history the client brings for a new thread."""

    message: str
    history: NotRequired[list[PriorMessage]]


async def append_message(state: AppendMessageInput) -> dict[str, Any]:
    """Record the question (after any client-held history) as a human message; later nodes read `question`."""
    question = state["message"].strip()
    prior: list[AnyMessage] = [
        HumanMessage(content=m["content"]) if m["role"] == "user" else AIMessage(content=m["content"])
        for m in state.get("history") or []
    ]
    return {
        "messages": [*prior, HumanMessage(content=question)],
        "question": question,
        "started_at": time.time(),
        "history": [],
    }
