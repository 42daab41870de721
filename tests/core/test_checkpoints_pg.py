"""Checkpoints on PostgreSQL (server mode): two Docents, as two replicas, on one real database and one Redis
share threads, take turns on them one at a time, and roll a failed turn back there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableConfig

from core.answering.providers import UnknownModelError
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.settings import Settings
from core.storage.checkpoints import open_checkpointer, setup_checkpoints
from core.storage.db import SchemaError
from core.types import DocentContext
from graph.build import Docent, open_docent
from graph.multitask import MultitaskStrategy, RedisTurnGate, ThreadBusyError
from graph.turn import run_turn
from tests.helpers import REDIS_URL, upgraded

QUESTIONS = [f"How often should I turn a compost pile? (take {n})" for n in range(8)]


def replica_settings(
    pg_url: str, data_dir: Path, redis_prefix: str, strategy: MultitaskStrategy = "reject"
) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=pg_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        turn_multitask=strategy,
    )


async def open_replicas(
    stack: AsyncExitStack,
    pg_url: str,
    tmp_path: Path,
    redis_prefix: str,
    embedder: OnnxMiniLMEmbedder,
    strategy: MultitaskStrategy = "reject",
) -> list[Docent]:
    replicas = []
    for name in ("a", "b"):
        settings = replica_settings(pg_url, tmp_path / name, redis_prefix, strategy)
        if name == "a":
            await upgraded(settings)
        services = Services(settings, embedder=embedder)
        replicas.append(await stack.enter_async_context(open_docent(settings, services)))
    return replicas


@pytest.fixture
async def replicas(
    pg_url: str, tmp_path: Path, redis_prefix: str, embedder: OnnxMiniLMEmbedder
) -> AsyncIterator[list[Docent]]:
    async with AsyncExitStack() as stack:
        yield await open_replicas(stack, pg_url, tmp_path, redis_prefix, embedder)


def human_questions(values: dict[str, object]) -> list[str]:
    messages = values.get("messages", [])
    assert isinstance(messages, list)
    return [str(m.content) for m in messages if m.type == "human"]


async def test_two_replicas_continue_one_thread_through_postgres(replicas: list[Docent]) -> None:
    a, b = replicas
    assert all(isinstance(r.turns, RedisTurnGate) for r in replicas)
    assert type(a.checkpointer).__name__ == "AsyncPostgresSaver"
    first = await run_turn(a.graph, "How much do red wigglers eat per day?", gate=a.turns)
    thread = first.output["thread_id"]
    await run_turn(b.graph, "And what bedding do they need?", thread_id=thread, gate=b.turns)
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    for replica in replicas:
        state = await replica.graph.aget_state(config)
        assert human_questions(state.values) == [
            "How much do red wigglers eat per day?",
            "And what bedding do they need?",
        ]
    # The follow-up answered on B was searched together with the turn answered on A.
    state = await b.graph.aget_state(config)
    assert "red wigglers" in str(state.values["search_query"])


async def test_concurrent_turns_on_two_replicas_never_overwrite_each_others_checkpoint(
    pg_url: str, tmp_path: Path, redis_prefix: str, embedder: OnnxMiniLMEmbedder
) -> None:
    async with AsyncExitStack() as stack:
        a, b = await open_replicas(stack, pg_url, tmp_path, redis_prefix, embedder, "enqueue")
        turns = [
            run_turn(replica.graph, q, thread_id="shared", gate=replica.turns)
            for replica, q in zip([a, b] * len(QUESTIONS), QUESTIONS, strict=False)
        ]
        await asyncio.gather(*turns)
        state = await b.graph.aget_state({"configurable": {"thread_id": "shared"}})
    assert sorted(human_questions(state.values)) == sorted(QUESTIONS)


async def test_a_turn_on_a_thread_busy_on_another_replica_is_refused(replicas: list[Docent]) -> None:
    a, b = replicas
    async with a.turns.turn("busy"):
        with pytest.raises(ThreadBusyError):
            await run_turn(b.graph, "What is bokashi?", thread_id="busy", gate=b.turns)
    await run_turn(b.graph, "What is bokashi?", thread_id="busy", gate=b.turns)


async def test_a_failed_turn_leaves_the_postgres_checkpoint_as_it_was(replicas: list[Docent]) -> None:
    a, _b = replicas
    bad = DocentContext(model="no-such-model")
    with pytest.raises(UnknownModelError):  # a new thread: emptied again (adelete_thread)
        await run_turn(a.graph, "What is bokashi?", thread_id="fresh", context=bad, gate=a.turns)
    assert await a.checkpointer.aget_tuple({"configurable": {"thread_id": "fresh"}}) is None
    await run_turn(a.graph, "What is bokashi?", thread_id="kept", gate=a.turns)
    with pytest.raises(UnknownModelError):  # a thread with turns: back to its last one (aupdate_state)
        await run_turn(a.graph, "How hot does compost get?", thread_id="kept", context=bad, gate=a.turns)
    state = await a.graph.aget_state({"configurable": {"thread_id": "kept"}})
    assert human_questions(state.values) == ["What is bokashi?"]


async def test_a_database_without_checkpoint_tables_is_refused_naming_docent_db_upgrade(
    pg_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=pg_url)
    with pytest.raises(SchemaError, match="docent db upgrade"):
        async with open_checkpointer(settings):
            pytest.fail("opened a checkpointer without its tables")
    await asyncio.gather(setup_checkpoints(settings), setup_checkpoints(settings))  # two upgrades at once
    async with open_checkpointer(settings) as saver:
        assert await saver.aget_tuple({"configurable": {"thread_id": "none"}}) is None


async def test_setup_checkpoints_does_nothing_when_embedded(settings: Settings) -> None:
    await setup_checkpoints(settings)
    assert not settings.checkpoint_db.exists()
