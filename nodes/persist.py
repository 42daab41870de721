"""Node 4: the turn's record. Run alone (Studio, `langgraph dev`) the node writes it, durable when the node
returns; a turn run by `graph.turn` writes it right after the run's one checkpoint instead (the run's metadata
says so, `RECORD_AFTER_KEY`), so that no record exists for a turn the checkpoint lacks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, cast

from langgraph.config import get_config
from langgraph.runtime import Runtime

from core.storage.records import TurnRecord, TurnRecords
from core.tracing import span
from core.types import ANSWER_FIELDS, AnswerFields

RECORD_AFTER_KEY = "docent_record_after"
"""Run and checkpoint metadata: the turn's record is written after its checkpoint, by the caller; such a
checkpoint counts only once its record is found (graph/turn.py)."""


class PersistInput(AnswerFields):
    """The finished turn: its question, its answer and when it started."""

    question: str
    started_at: float


def turn_record(state: Mapping[str, Any], thread_id: str, run_id: str | None) -> TurnRecord:
    """The record of a finished turn (the graph's state at its end): question, answer, citations, model,
    latency since the turn started, usage, cost, degradation."""
    return TurnRecord(
        thread_id=thread_id,
        run_id=run_id,
        question=state["question"],
        answer=cast(AnswerFields, {name: state.get(name) for name in ANSWER_FIELDS}),
        latency_ms=round((time.time() - state["started_at"]) * 1000, 2),
    )


async def write_record(records: TurnRecords, record: TurnRecord) -> None:
    """One row per turn, in a worker thread, traced as the records write."""
    attributes = {
        "db.operation.name": "insert",
        "db.collection.name": "turns",
        "docent.thread_id": record.thread_id,
    }
    with span("records add_turn", attributes):
        await asyncio.to_thread(records.add_turn, record)


async def persist(state: PersistInput, runtime: Runtime[Any], *, records: TurnRecords) -> dict[str, Any]:
    """Write the turn's record, unless the run's caller writes it after the checkpoint."""
    if get_config().get("metadata", {}).get(RECORD_AFTER_KEY):
        return {}
    info = runtime.execution_info
    thread = (info.thread_id if info else None) or ""
    await write_record(records, turn_record(state, thread, info.run_id if info else None))
    return {}
