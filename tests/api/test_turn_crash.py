"""Crash safety of an acknowledged turn: a real `docent serve` killed with SIGKILL the moment its 200 has been
read still has that turn, once, in the thread's checkpoint and in the turn records (a turn is checkpointed at
its end, not after each step: graph/turn.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from core.storage.db import open_database
from core.storage.records import TurnRecords
from graph.build import open_docent
from tests.helpers import docent_env, docent_serving, ingest_sample

QUESTIONS = (
    "What temperature should a hot compost pile reach?",
    "How do I fix a smelly compost pile?",
    "And what about one that is too wet?",
)


def _ask_then_kill(data_dir: Path, log: Path, thread_id: str, question: str) -> str:
    """One /invoke on `thread_id`; SIGKILL the server as soon as its 200 is read. The reply's run id."""
    with docent_serving(docent_env(data_dir), log) as (base, process):
        reply = httpx.post(
            f"{base}/invoke",
            json={"input": {"message": question}, "config": {"configurable": {"thread_id": thread_id}}},
            timeout=60,
        )
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert reply.status_code == 200, reply.text
    run_id: str = reply.json()["metadata"]["run_id"]
    return run_id


@pytest.mark.timeout(300)
async def test_a_server_killed_right_after_a_200_keeps_that_turn_in_the_checkpoint_and_the_records(
    tmp_path: Path,
) -> None:
    data_dir = ingest_sample(tmp_path / "data")
    thread = "crash-after-200"
    run_ids = [
        _ask_then_kill(data_dir, tmp_path / f"serve-{n}.log", thread, q) for n, q in enumerate(QUESTIONS)
    ]

    settings = Settings(data_dir=data_dir, auth="off")
    records = TurnRecords(open_database(settings))
    try:
        stored = records.turns(thread)
    finally:
        records.close()
    assert [r.run_id for r in stored] == run_ids
    assert [r.question for r in stored] == list(QUESTIONS)
    assert all(r.answer["answer"] for r in stored)

    async with open_docent(settings) as docent:
        state = await docent.graph.aget_state({"configurable": {"thread_id": thread}})
    assert not state.next, "the last turn is finished in its checkpoint"
    messages = state.values["messages"]
    assert [m.text for m in messages if m.type == "human"] == list(QUESTIONS)
    assert [m.text for m in messages if m.type == "ai"] == [r.answer["answer"] for r in stored]
