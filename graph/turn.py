"""One conversational turn through the compiled graph: the single entry point the API and CLI share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from core.context import DocentContext
from core.passages import Citation, Usage
from graph.build import DocentGraph


@dataclass(frozen=True)
class TurnResult:
    """A turn's answer and the ids that locate it."""

    thread_id: str
    run_id: str
    answer: str
    citations: list[Citation]
    model: str
    usage: Usage | None

    def output(self) -> dict[str, Any]:
        """The LangServe-shaped `{"output": ..., "metadata": ...}` body of /invoke."""
        return {
            "output": {
                "answer": self.answer,
                "citations": self.citations,
                "thread_id": self.thread_id,
                "model": self.model,
                "usage": self.usage,
            },
            "metadata": {"run_id": self.run_id},
        }


def new_thread_id() -> str:
    """A fresh conversation id."""
    return uuid.uuid4().hex


async def run_turn(
    graph: DocentGraph, message: str, *, thread_id: str | None = None, context: DocentContext | None = None
) -> TurnResult:
    """Ask one question on a thread (a new thread when none is given) and wait for the answer."""
    thread = thread_id or new_thread_id()
    run_id = uuid.uuid4()
    config: RunnableConfig = {"configurable": {"thread_id": thread}, "run_id": run_id}
    result = await graph.ainvoke({"message": message}, config, context=context or DocentContext())
    return TurnResult(
        thread_id=thread,
        run_id=str(run_id),
        answer=result["answer"],
        citations=result["citations"],
        model=result["model"],
        usage=result.get("usage"),
    )
