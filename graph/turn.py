"""One conversational turn through the compiled graph: the single entry point the API and CLI share,
waited for whole (`run_turn`) or streamed as events (`stream_turn`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import anyio
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig

from core.context import DocentContext
from core.passages import Citation, Passage, Usage
from graph.build import DocentGraph
from graph.state import InputState

EventName = Literal["metadata", "sources", "token", "error", "end"]
TurnEvent = tuple[EventName, dict[str, Any]]


@dataclass(frozen=True)
class TurnResult:
    """A turn's answer and the ids that locate it."""

    thread_id: str
    run_id: str
    answer: str
    citations: list[Citation]
    model: str
    usage: Usage | None
    cost: float | None = None
    degraded: bool = False
    degraded_reason: str | None = None

    def fields(self) -> dict[str, Any]:
        """The answer's fields, as /invoke's `output` and the stream's `end` event carry them."""
        return {
            "answer": self.answer,
            "citations": self.citations,
            "thread_id": self.thread_id,
            "model": self.model,
            "usage": self.usage,
            "cost": self.cost,
            "degraded": self.degraded,
            "degraded_reason": self.degraded_reason,
        }

    def output(self) -> dict[str, Any]:
        """The LangServe-shaped `{"output": ..., "metadata": ...}` body of /invoke."""
        return {"output": self.fields(), "metadata": {"run_id": self.run_id}}


def new_thread_id() -> str:
    """A fresh conversation id."""
    return uuid.uuid4().hex


def _result(thread: str, run_id: uuid.UUID, values: dict[str, Any]) -> TurnResult:
    return TurnResult(
        thread_id=thread,
        run_id=str(run_id),
        answer=values["answer"],
        citations=values["citations"],
        model=values["model"],
        usage=values.get("usage"),
        cost=values.get("cost"),
        degraded=bool(values.get("degraded", False)),
        degraded_reason=values.get("degraded_reason"),
    )


async def run_turn(
    graph: DocentGraph, message: str, *, thread_id: str | None = None, context: DocentContext | None = None
) -> TurnResult:
    """Ask one question on a thread (a new thread when none is given) and wait for the answer."""
    thread = thread_id or new_thread_id()
    run_id = uuid.uuid4()
    config: RunnableConfig = {"configurable": {"thread_id": thread}, "run_id": run_id}
    result = await graph.ainvoke({"message": message}, config, context=context or DocentContext())
    return _result(thread, run_id, result)


def numbered_sources(passages: Sequence[Passage]) -> list[Citation]:
    """The retrieved passages as the numbered sources the answer may cite as [n]."""
    return [
        Citation(
            n=n,
            source=p["source"],
            title=p["title"],
            page=p["page"],
            snippet=p["text"][:300],
            chunk_id=p["chunk_id"],
        )
        for n, p in enumerate(passages, start=1)
    ]


async def stream_turn(
    graph: DocentGraph, message: str, *, thread_id: str | None = None, context: DocentContext | None = None
) -> AsyncIterator[TurnEvent]:
    """One turn as events: `metadata`, `sources` (before any token), `token`s from the summarize node,
    `error` if the model failed mid-stream, and `end` once the turn is recorded. `end.answer` is the answer of
    record: after an `error` it replaces the tokens streamed so far. Closing the iterator cancels the turn
    before it is recorded.
    """
    thread = thread_id or new_thread_id()
    run_id = uuid.uuid4()
    config: RunnableConfig = {"configurable": {"thread_id": thread}, "run_id": run_id}
    yield "metadata", {"thread_id": thread, "run_id": str(run_id)}
    answer: dict[str, Any] = {}
    streamed = False
    async for mode, payload in _graph_parts(
        graph, InputState(message=message), config, context or DocentContext()
    ):
        if mode == "messages":
            chunk, meta = payload
            if meta.get("langgraph_node") != "summarize" or not chunk.text:
                continue
            if isinstance(chunk, AIMessageChunk):
                streamed = True
                yield "token", {"text": chunk.text}
            elif isinstance(chunk, AIMessage) and not streamed:
                # An answerer that does not stream (extractive) hands its whole answer over as one token.
                yield "token", {"text": chunk.text}
        elif mode == "updates":
            for node, update in payload.items():
                if node == "retrieve" and update:
                    yield "sources", {"sources": numbered_sources(update["contexts"])}
                elif node == "summarize" and update:
                    answer = update
        elif mode == "custom" and payload.get("event") == "error":
            yield "error", {"reason": payload.get("reason")}
    end = _result(thread, run_id, answer)
    yield "end", {**end.fields(), "run_id": end.run_id}


async def _graph_parts(
    graph: DocentGraph, state: InputState, config: RunnableConfig, context: DocentContext
) -> AsyncIterator[tuple[str, Any]]:
    """graph.astream run in its own task. However the consumer is stopped (a plain task cancel, or an anyio
    cancel scope as sse-starlette uses, which LangGraph would wait out), the graph task is cancelled and
    awaited, so the model's stream is closed before this returns.
    """
    parts: asyncio.Queue[tuple[str, Any] | BaseException | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            stream = graph.astream(
                state, config, context=context, stream_mode=["updates", "messages", "custom"]
            )
            async for part in cast(AsyncIterator[tuple[str, Any]], stream):
                parts.put_nowait(part)
            parts.put_nowait(None)
        except Exception as exc:  # handed to the consumer, who raises it
            parts.put_nowait(exc)

    producer = asyncio.create_task(produce())
    try:
        while (item := await parts.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not producer.done():
            producer.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([producer])
