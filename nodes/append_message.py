"""Node 1: add the user's message to the thread and start the turn's clock."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import HumanMessage
from typing_extensions import TypedDict


class AppendMessageInput(TypedDict):
    """The incoming user message."""

    message: str


async def append_message(state: AppendMessageInput) -> dict[str, Any]:
    """Record the question as a human message; later nodes read `question`."""
    question = state["message"].strip()
    return {"messages": [HumanMessage(content=question)], "question": question, "started_at": time.time()}
