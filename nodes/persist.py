"""Node 4: write the turn's record; it is durable when this node returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from langgraph.runtime import Runtime

from core.storage.records import TurnRecord, TurnRecords
from core.tracing import span
from core.types import ANSWER_FIELDS, AnswerFields


class PersistInput(AnswerFields):
    """The finished turn: its question, its answer and when it started."""

    question: str
    started_at: float


async def persist(state: PersistInput, runtime: Runtime[Any], *, records: TurnRecords) -> dict[str, Any]:
    """One row per turn: thread, question, answer, citations, model, latency, usage, cost, degradation."""
    info = runtime.execution_info
    record = TurnRecord(
        thread_id=(info.thread_id if info else None) or "",
        run_id=info.run_id if info else None,
        question=state["question"],
        answer=cast(AnswerFields, {name: state.get(name) for name in ANSWER_FIELDS}),
        latency_ms=round((time.time() - state["started_at"]) * 1000, 2),
    )
    attributes = {
        "db.operation.name": "insert",
        "db.collection.name": "turns",
        "docent.thread_id": record.thread_id,
    }
    with span("records add_turn", attributes):
        await asyncio.to_thread(records.add_turn, record)
    return {}
