"""Node 3: answer from the retrieved passages only, with numbered citations."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from core.answering import AnswerRequest
from core.context import DocentContext
from core.passages import Passage
from core.providers import AnswererRegistry


class SummarizeInput(TypedDict):
    """The question, the passages retrieved for it, and the thread so far."""

    question: str
    search_query: str
    contexts: list[Passage]
    messages: list[AnyMessage]


async def summarize(
    state: SummarizeInput, runtime: Runtime[DocentContext], *, answerers: AnswererRegistry
) -> dict[str, Any]:
    """Ask the chosen answerer; the answer joins the thread as an AI message."""
    answerer = answerers.get(runtime.context.model if runtime.context else None)
    history = [f"{m.type}: {m.text}" for m in state["messages"][:-1]]
    request = AnswerRequest(
        question=state["question"],
        search_query=state["search_query"],
        passages=state["contexts"],
        history=history,
    )
    answer = await answerer.answer(request)
    return {
        "answer": answer.text,
        "citations": answer.citations,
        "model": answer.model,
        "usage": answer.usage,
        "messages": [AIMessage(content=answer.text, response_metadata={"model": answer.model})],
    }
