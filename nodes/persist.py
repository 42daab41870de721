"""Node 4: write the turn's record; it is durable when this node returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from core.passages import Citation, Usage
from core.records import SqliteRecords, TurnRecord


class PersistInput(TypedDict):
    """The finished turn."""

    question: str
    answer: str
    citations: list[Citation]
    model: str
    usage: Usage | None
    cost: float | None
    degraded: bool
    degraded_reason: str | None
    started_at: float


async def persist(state: PersistInput, runtime: Runtime[Any], *, records: SqliteRecords) -> dict[str, Any]:
    """One row per turn: thread, question, answer, citations, model, latency, usage, cost, degradation."""
    info = runtime.execution_info
    record = TurnRecord(
        thread_id=(info.thread_id if info else None) or "",
        run_id=info.run_id if info else None,
        question=state["question"],
        answer=state["answer"],
        citations=state["citations"],
        model=state["model"],
        usage=state.get("usage"),
        cost=state.get("cost"),
        degraded=state.get("degraded", False),
        degraded_reason=state.get("degraded_reason"),
        latency_ms=round((time.time() - state["started_at"]) * 1000, 2),
    )
    await asyncio.to_thread(records.add_turn, record)
    return {}
