"""One turn at a time per thread. Before: nothing serialised turns per thread, and 20 concurrent turns on one
thread gave 20 records but a checkpoint holding 1 exchange, so follow-ups saw another history than
GET /threads; /batch ran inputs sharing a thread four at a time; a cancelled stream left its question in the
checkpoint."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.support.servers import ModelScript
from core.settings import Settings
from core.storage.checkpoints import open_checkpointer
from tests.helpers import docent_server, ingest_sample

QUESTIONS = [f"How often should I turn a compost pile? (take {n})" for n in range(20)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ingest_sample(tmp_path_factory.mktemp("turns") / "data")


def _body(message: str, thread_id: str) -> dict[str, Any]:
    return {"input": {"message": message}, "config": {"configurable": {"thread_id": thread_id}}}


async def _concurrent_turns(base: str, thread_id: str) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        replies = await asyncio.gather(*(client.post("/invoke", json=_body(q, thread_id)) for q in QUESTIONS))
    return [reply.status_code for reply in replies]


def _checkpoint_questions(data_dir: Path, thread_id: str) -> list[str]:
    async def read() -> list[str]:
        async with open_checkpointer(Settings(data_dir=data_dir)) as saver:
            saved = await saver.aget_tuple({"configurable": {"thread_id": thread_id}})
            if saved is None:
                return []
            messages = saved.checkpoint["channel_values"].get("messages", [])
            return [str(m.content) for m in messages if m.type == "human"]

    return asyncio.run(read())


def _recorded_questions(data_dir: Path, thread_id: str) -> list[str]:
    with sqlite3.connect(data_dir / "docent.sqlite") as db:
        rows = db.execute("SELECT question FROM turns WHERE thread_id = ? ORDER BY id", (thread_id,))
        return [row[0] for row in rows]


def test_concurrent_turns_on_one_thread_are_refused_and_the_checkpoint_matches_the_records(
    data_dir: Path, tmp_path: Path
) -> None:
    with docent_server(data_dir, tmp_path / "server.log") as base:
        statuses = Counter(asyncio.run(_concurrent_turns(base, "busy-reject")))
    assert set(statuses) <= {200, 409} and statuses[200] >= 1, statuses
    assert statuses[409] >= 1, f"20 concurrent turns on one thread were all answered: {statuses}"
    recorded = _recorded_questions(data_dir, "busy-reject")
    assert len(recorded) == statuses[200]
    assert _checkpoint_questions(data_dir, "busy-reject") == recorded


def test_enqueued_turns_on_one_thread_all_land_in_the_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    with docent_server(
        data_dir, tmp_path / "server.log", DOCENT_TURN_MULTITASK="enqueue", DOCENT_TURN_WAIT_S="120"
    ) as base:
        statuses = asyncio.run(_concurrent_turns(base, "busy-enqueue"))
    assert statuses == [200] * len(QUESTIONS)
    recorded = _recorded_questions(data_dir, "busy-enqueue")
    assert sorted(recorded) == sorted(QUESTIONS)
    assert _checkpoint_questions(data_dir, "busy-enqueue") == recorded


def test_batch_inputs_sharing_a_thread_run_in_order(data_dir: Path, tmp_path: Path) -> None:
    questions = QUESTIONS[:8]
    body = {
        "inputs": [{"message": q} for q in questions],
        "config": {"configurable": {"thread_id": "batch-line"}},
    }
    with docent_server(data_dir, tmp_path / "server.log") as base:
        reply = httpx.post(f"{base}/batch", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    assert reply.json()["errors"] == [None] * len(questions)
    assert _recorded_questions(data_dir, "batch-line") == questions
    assert _checkpoint_questions(data_dir, "batch-line") == questions


def test_a_cancelled_stream_leaves_the_checkpoint_as_it_was(
    data_dir: Path, tmp_path: Path, scripted_openai: tuple[str, ModelScript]
) -> None:
    model_base, script = scripted_openai
    script.token_delay_s = 0.5  # the hang-up lands while the answer is being generated, long before persist
    env = {
        "DOCENT_LLM_PROVIDER": "openai",
        "DOCENT_OPENAI_BASE_URL": f"{model_base}/v1",
        "DOCENT_LLM_MODEL": "gpt-4o-mini",
        "DOCENT_LLM_FALLBACKS": "",
    }
    with docent_server(data_dir, tmp_path / "server.log", **env) as base:
        first = httpx.post(f"{base}/invoke", json=_body("What is bokashi?", "cancelled"), timeout=60)
        assert first.status_code == 200
        body = _body("How hot should a compost pile get?", "cancelled")
        with httpx.stream("POST", f"{base}/stream", json=body, timeout=60) as reply:
            for line in reply.iter_lines():
                if line.startswith("event: token"):
                    break  # the answer is under way: hang up
        again = httpx.post(f"{base}/invoke", json=_body("And what about worms?", "cancelled"), timeout=60)
        assert again.status_code == 200
    assert _checkpoint_questions(data_dir, "cancelled") == ["What is bokashi?", "And what about worms?"]
    assert _recorded_questions(data_dir, "cancelled") == ["What is bokashi?", "And what about worms?"]
