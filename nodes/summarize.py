"""Node 3: answer from the retrieved passages only, with numbered citations."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from core.answering import AnswerRequest, Role
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
    """Ask the chosen answerer (an LLM streams its tokens to the graph's `messages` stream from here); the
    answer joins the thread as an AI message. A model failure mid-stream is told as a custom `error` event.
    """
    answerer = answerers.get(runtime.context.model if runtime.context else None)
    history: list[tuple[Role, str]] = [
        ("user" if m.type == "human" else "assistant", m.text) for m in state["messages"][:-1]
    ]
    request = AnswerRequest(
        question=state["question"],
        search_query=state["search_query"],
        passages=state["contexts"],
        history=history,
    )
    answer = await answerer.answer(request)
    if answer.interrupted:
        runtime.stream_writer({"event": "error", "reason": answer.degraded_reason})
    return {
        "answer": answer.text,
        "citations": answer.citations,
        "model": answer.model,
        "usage": answer.usage,
        "cost": answer.cost,
        "degraded": answer.degraded,
        "degraded_reason": answer.degraded_reason,
        "messages": [AIMessage(content=answer.text, response_metadata={"model": answer.model})],
    }
