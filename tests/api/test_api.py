"""End to end over real uvicorn: /invoke, /health, validation, and threads that survive a restart."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from core.storage.checkpoints import open_checkpointer
from core.types import ANSWER_FIELDS
from tests.helpers import docent_server, ingest_sample


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the ingested sample corpus, shared by this module's servers."""
    path = tmp_path_factory.mktemp("api") / "data"
    ingest_sample(path)
    return path


def invoke(base: str, message: str, thread_id: str | None = None, **knobs: object) -> httpx.Response:
    configurable: dict[str, object] = {**knobs}
    if thread_id:
        configurable["thread_id"] = thread_id
    body = {"input": {"message": message}, "config": {"configurable": configurable}}
    return httpx.post(f"{base}/invoke", json=body, timeout=60)


def test_invoke_answers_with_citations_and_a_new_thread(data_dir: Path, tmp_path: Path) -> None:
    with docent_server(data_dir, tmp_path / "server.log") as base:
        health = httpx.get(f"{base}/health").json()
        assert health["status"] == "ok" and "extractive" in health["models"]
        reply = invoke(base, "What temperature should a hot compost pile reach?")
        assert reply.status_code == 200, reply.text
        body = reply.json()
        output = body["output"]
        assert "55" in output["answer"]
        assert output["model"] == "extractive"
        assert output["thread_id"] and body["metadata"]["run_id"]
        citation = output["citations"][0]
        assert set(citation) >= {"n", "source", "page", "snippet"}
        assert citation["source"].endswith(".html") and citation["snippet"]


def test_bad_requests_get_a_422_naming_the_field(data_dir: Path, tmp_path: Path) -> None:
    with docent_server(data_dir, tmp_path / "server.log") as base:
        for body, field in (
            ({}, "input"),
            ({"input": {"message": ""}}, "message"),
            ({"input": {"message": "hi"}, "config": {"configurable": {"k": 0}}}, "k"),
            (
                {"input": {"message": "hi"}, "config": {"configurable": {"thread_id": "../../etc"}}},
                "thread_id",
            ),
        ):
            reply = httpx.post(f"{base}/invoke", json=body)
            assert reply.status_code == 422, body
            assert field in reply.text
        unknown = invoke(base, "What is bokashi?", model="no-such-model")
        assert unknown.status_code == 400
        assert "no-such-model" in unknown.json()["detail"]


def test_thread_history_survives_a_server_restart(data_dir: Path, tmp_path: Path) -> None:
    with docent_server(data_dir, tmp_path / "first.log") as base:
        first = invoke(base, "How much do red wigglers eat per day?").json()["output"]
        thread = first["thread_id"]
        assert invoke(base, "What temperature should a hot compost pile reach?", thread).status_code == 200
    with docent_server(data_dir, tmp_path / "second.log") as base:
        after = invoke(base, "And what bedding do they need?", thread)
        assert after.status_code == 200
        assert after.json()["output"]["thread_id"] == thread

    async def saved_state() -> dict[str, object]:
        async with open_checkpointer(Settings(data_dir=data_dir)) as checkpointer:
            saved = await checkpointer.aget_tuple({"configurable": {"thread_id": thread}})
            assert saved is not None
            return dict(saved.checkpoint["channel_values"])

    values = asyncio.run(saved_state())
    messages = values["messages"]
    assert isinstance(messages, list) and len(messages) == 6  # three turns, two before the restart
    # The follow-up asked after the restart was searched together with the turns from before it.
    assert "red wigglers" in str(values["search_query"]) and "bedding" in str(values["search_query"])
    rows = (
        sqlite3.connect(data_dir / "docent.sqlite")
        .execute("SELECT question, model FROM turns WHERE thread_id = ? ORDER BY id", (thread,))
        .fetchall()
    )
    assert [q for q, _ in rows] == [
        "How much do red wigglers eat per day?",
        "What temperature should a hot compost pile reach?",
        "And what bedding do they need?",
    ]
    assert {m for _, m in rows} == {"extractive"}


def test_every_output_carries_the_answer_fields_of_core_types(data_dir: Path, tmp_path: Path) -> None:
    """One type per concept: /invoke, the stream's end event and the thread's history all carry
    core.types.AnswerFields, so a field added there reaches each of them."""
    fields = set(ANSWER_FIELDS)
    with docent_server(data_dir, tmp_path / "server.log") as base:
        output = invoke(base, "How often should I turn a compost pile?").json()["output"]
        assert set(output) == fields | {"thread_id"}
        body = {"input": {"message": "What is bokashi?"}, "config": {"configurable": {}}}
        with httpx.stream("POST", f"{base}/stream", json=body, timeout=60) as reply:
            lines = [line for line in reply.iter_lines() if line.startswith("data:")]
        end = json.loads(lines[-1].removeprefix("data:"))
        assert fields | {"thread_id"} <= set(end)
        history = httpx.get(f"{base}/threads/{output['thread_id']}").json()
        answer = history["messages"][-1]
        assert answer["role"] == "assistant" and answer["content"] == output["answer"]
        assert fields - {"answer"} <= set(answer)
        assert answer["citations"] == output["citations"]
