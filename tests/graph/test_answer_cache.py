"""The answer cache around the graph: real Chroma, SQLite (or PostgreSQL and Redis) and the scripted
OpenAI-protocol model server, whose requests are counted to tell a served answer from a computed one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig

from bench.support.servers import SAMPLE_CORPUS, ModelScript, docent_env, run_docent
from core.answering.cache import AnswerCache, RedisAnswerStore
from core.metrics import ANSWER_CACHE
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.settings import Settings
from core.storage.workspaces import stored_collection
from core.types import DocentContext, PriorMessage
from graph.build import Docent, open_docent
from graph.turn import TURN_RUN_KEY, begin_lookup, run_turn, stream_turn
from ingest.pipeline import Ingestor
from tests.helpers import REDIS_URL, upgraded

QUESTION = "How much do red wigglers eat per day?"
PARAPHRASE = "Can you tell me how much red wigglers eat per day, please?"
OTHER_PARAPHRASE = "How much do red wigglers eat per day? Thanks."
THIRD_PARAPHRASE = "Quick question: how much do red wigglers eat per day?"


def model_settings(data_dir: Path, model_base: str, **extra: object) -> Settings:
    """Answers from the scripted OpenAI-protocol server, and nothing else (no fallback)."""
    return Settings(
        data_dir=data_dir,
        llm_provider="openai",
        openai_base_url=f"{model_base}/v1",
        llm_model="gpt-4o-mini",
        llm_max_retries=0,
        **extra,  # type: ignore[arg-type]
    )


def ingest(services: Services, *paths: Path, collection: str | None = None) -> None:
    summary = Ingestor(services.settings, services.embedder, services.store).run(
        [str(p) for p in paths], collection=collection
    )
    assert not summary.failures, summary.failures


@pytest.fixture
async def docent(
    tmp_path: Path, embedder: OnnxMiniLMEmbedder, scripted_openai: tuple[str, ModelScript]
) -> AsyncIterator[Docent]:
    """The sample corpus in the default collection, answered through the scripted model, cache on."""
    settings = model_settings(tmp_path / "data", scripted_openai[0])
    services = Services(settings, embedder=embedder)
    ingest(services, SAMPLE_CORPUS)
    async with open_docent(settings, services) as opened:
        yield opened


def cache_of(docent: Docent) -> AnswerCache:
    cache = docent.services.answer_cache
    assert cache is not None
    return cache


def model_calls(scripted_openai: tuple[str, ModelScript]) -> int:
    return len(scripted_openai[1].chat_requests)


async def test_a_paraphrase_of_an_answered_question_gets_its_answer_and_citations_without_the_model(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    cache = cache_of(docent)
    first = await run_turn(docent.graph, QUESTION, cache=cache)
    assert not first.output["cached"] and first.output["model"] == "openai/gpt-4o-mini"
    calls = model_calls(scripted_openai)
    hits = ANSWER_CACHE.labels(result="hit")._value.get()

    second = await run_turn(docent.graph, PARAPHRASE, cache=cache)

    assert second.output["cached"] is True
    assert model_calls(scripted_openai) == calls
    assert second.output["answer"] == first.output["answer"]
    assert second.output["citations"] == first.output["citations"]
    assert second.output["cost"] == 0.0 and second.output["usage"] is None
    assert ANSWER_CACHE.labels(result="hit")._value.get() == hits + 1
    assert second.thread_id != first.thread_id


async def test_a_cached_turn_is_a_turn_of_record_that_a_follow_up_continues(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    cache = cache_of(docent)
    first = await run_turn(docent.graph, QUESTION, cache=cache)
    served = await run_turn(docent.graph, PARAPHRASE, cache=cache)
    assert served.output["cached"]
    config: RunnableConfig = {"configurable": {"thread_id": served.thread_id}}
    state = await docent.graph.aget_state(config)
    assert not state.next  # finished, as a graph turn leaves it
    assert (state.metadata or {}).get(TURN_RUN_KEY) == served.run_id  # an idempotent retry finds its run
    messages = state.values["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage]
    assert messages[0].content == PARAPHRASE and messages[1].content == first.output["answer"]
    [record] = docent.services.records.turns(served.thread_id)
    assert record.question == PARAPHRASE and record.run_id == served.run_id
    assert record.answer["cached"] is True and record.answer["answer"] == first.output["answer"]
    assert not docent.services.records.turns(first.thread_id)[0].answer["cached"]

    calls = model_calls(scripted_openai)
    follow_up = await run_turn(
        docent.graph, "And what bedding do they need?", thread_id=served.thread_id, cache=cache
    )
    assert not follow_up.output["cached"]
    assert model_calls(scripted_openai) == calls + 1
    state = await docent.graph.aget_state(config)
    assert "red wigglers" in state.values["search_query"]
    assert [m.content for m in state.values["messages"] if isinstance(m, HumanMessage)] == [
        PARAPHRASE,
        "And what bedding do they need?",
    ]


@pytest.mark.parametrize("recorded", [True, False])
async def test_a_cached_turn_counts_only_once_its_record_is_written(
    docent: Docent, monkeypatch: pytest.MonkeyPatch, recorded: bool
) -> None:
    cache = cache_of(docent)
    await run_turn(docent.graph, QUESTION, cache=cache)
    if not recorded:  # as a process killed after the turn's one checkpoint, before its record
        monkeypatch.setattr(cache.records, "add_turn", lambda record: None)
    served = await run_turn(docent.graph, PARAPHRASE, cache=cache)
    assert served.output["cached"]
    monkeypatch.undo()
    config: RunnableConfig = {"configurable": {"thread_id": served.thread_id}}
    assert len((await docent.graph.aget_state(config)).values["messages"]) == 2

    await run_turn(docent.graph, "And what bedding do they need?", thread_id=served.thread_id, cache=cache)

    state = await docent.graph.aget_state(config)
    asked = [m.content for m in state.values["messages"] if isinstance(m, HumanMessage)]
    kept = [PARAPHRASE] if recorded else []
    assert asked == [*kept, "And what bedding do they need?"]
    assert [turn.question for turn in docent.services.records.turns(served.thread_id)] == asked


async def test_a_streamed_paraphrase_is_served_from_the_cache_in_one_token(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    cache = cache_of(docent)
    first = await run_turn(docent.graph, QUESTION, cache=cache)
    calls = model_calls(scripted_openai)
    events = [event async for event in stream_turn(docent.graph, OTHER_PARAPHRASE, cache=cache)]
    names = [name for name, _ in events]
    assert names == ["metadata", "sources", "token", "end"]
    end = events[-1][1]
    assert end["cached"] is True and end["answer"] == first.output["answer"]
    assert end["citations"] == first.output["citations"]
    assert events[2][1]["text"] == first.output["answer"]
    assert model_calls(scripted_openai) == calls
    assert docent.services.records.by_run_id(end["run_id"]) is not None


async def test_a_streamed_first_answer_is_kept_for_the_next_paraphrase(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    cache = cache_of(docent)
    events = [event async for event in stream_turn(docent.graph, QUESTION, cache=cache)]
    assert events[-1][0] == "end" and not events[-1][1]["cached"]
    calls = model_calls(scripted_openai)
    served = await run_turn(docent.graph, PARAPHRASE, cache=cache)
    assert served.output["cached"] and served.output["answer"] == events[-1][1]["answer"]
    assert model_calls(scripted_openai) == calls


async def test_an_ingest_into_the_collection_by_another_process_makes_the_next_ask_run_the_graph(
    docent: Docent, scripted_openai: tuple[str, ModelScript], tmp_path: Path
) -> None:
    """`docent ingest` in another process, on the same data dir, bumps the corpus version in the database."""
    cache = cache_of(docent)
    await run_turn(docent.graph, QUESTION, cache=cache)
    assert (await run_turn(docent.graph, PARAPHRASE, cache=cache)).output["cached"]
    note = tmp_path / "wiggler-note.md"
    note.write_text("# Wiggler note\n\nRed wigglers eat about half their body weight a day in scraps.\n")
    done = await asyncio.to_thread(
        run_docent, ["ingest", str(note)], docent_env(docent.services.settings.data_dir)
    )
    assert done.returncode == 0, done.stderr

    calls = model_calls(scripted_openai)
    again = await run_turn(docent.graph, PARAPHRASE, cache=cache)
    assert not again.output["cached"]
    assert model_calls(scripted_openai) == calls + 1
    assert (await run_turn(docent.graph, THIRD_PARAPHRASE, cache=cache)).output["cached"]  # kept again


async def test_removing_a_source_invalidates_the_collections_answers(docent: Docent) -> None:
    cache = cache_of(docent)
    await run_turn(docent.graph, QUESTION, cache=cache)
    store = docent.services.store
    [record] = [r for r in store.sources.list("docent") if r.uri.endswith(".md")][:1] or store.sources.list(
        "docent"
    )[:1]
    await asyncio.to_thread(store.remove_source, "docent", record.uri)
    assert not (await run_turn(docent.graph, PARAPHRASE, cache=cache)).output["cached"]


async def test_a_second_turn_on_a_thread_is_never_served_from_the_cache(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    cache = cache_of(docent)
    first = await run_turn(docent.graph, QUESTION, cache=cache)
    calls = model_calls(scripted_openai)
    second = await run_turn(docent.graph, PARAPHRASE, thread_id=first.thread_id, cache=cache)
    assert not second.output["cached"]
    assert model_calls(scripted_openai) == calls + 1


async def test_a_lookup_begun_early_serves_a_new_thread_and_is_dropped_on_a_thread_with_turns(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    """A route begins the lookup before it claims the thread; the turn uses it only on a first turn."""
    cache = cache_of(docent)
    first = await run_turn(docent.graph, QUESTION, cache=cache)
    early = begin_lookup(cache, PARAPHRASE, DocentContext())
    assert early is not None
    served = await run_turn(docent.graph, PARAPHRASE, thread_id="fresh-thread", cache=cache, lookup=early)
    assert served.output["cached"] and served.thread_id == "fresh-thread"

    calls = model_calls(scripted_openai)
    late = begin_lookup(cache, OTHER_PARAPHRASE, DocentContext())
    assert late is not None and (await late).hit is not None  # the lookup alone would serve it
    follow_up = await run_turn(
        docent.graph, OTHER_PARAPHRASE, thread_id=first.thread_id, cache=cache, lookup=late
    )
    assert not follow_up.output["cached"]
    assert model_calls(scripted_openai) == calls + 1
    assert (
        begin_lookup(cache, QUESTION, DocentContext(), history=[PriorMessage(role="user", content="Hi")])
        is None
    )
    assert begin_lookup(None, QUESTION, DocentContext()) is None


async def test_a_turn_bringing_its_own_history_is_never_served_from_the_cache(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    cache = cache_of(docent)
    await run_turn(docent.graph, QUESTION, cache=cache)
    calls = model_calls(scripted_openai)
    history = [PriorMessage(role="user", content="Hello"), PriorMessage(role="assistant", content="Hi!")]
    result = await run_turn(docent.graph, PARAPHRASE, history=history, cache=cache)
    assert not result.output["cached"]
    assert model_calls(scripted_openai) == calls + 1


async def test_another_workspace_does_not_get_the_first_ones_cached_answer(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    cache = cache_of(docent)
    theirs = stored_collection("team-b", "docent")
    await asyncio.to_thread(ingest, docent.services, SAMPLE_CORPUS, collection=theirs)
    await run_turn(docent.graph, QUESTION, cache=cache)
    calls = model_calls(scripted_openai)
    other = await run_turn(docent.graph, PARAPHRASE, context=DocentContext(collection=theirs), cache=cache)
    assert not other.output["cached"]
    assert model_calls(scripted_openai) == calls + 1
    # and each workspace's own answer is served to its own paraphrases
    mine = await run_turn(
        docent.graph, OTHER_PARAPHRASE, context=DocentContext(collection=theirs), cache=cache
    )
    assert mine.output["cached"]


async def test_another_model_or_k_is_another_answer(docent: Docent) -> None:
    cache = cache_of(docent)
    await run_turn(docent.graph, QUESTION, cache=cache)
    assert not (await run_turn(docent.graph, PARAPHRASE, context=DocentContext(k=2), cache=cache)).output[
        "cached"
    ]
    extractive = DocentContext(model="extractive")
    if "extractive" in docent.services.answerers.names:
        assert not (await run_turn(docent.graph, PARAPHRASE, context=extractive, cache=cache)).output[
            "cached"
        ]


async def test_a_degraded_answer_is_not_cached(
    docent: Docent, scripted_openai: tuple[str, ModelScript]
) -> None:
    cache = cache_of(docent)
    scripted_openai[1].faults.extend(["500"] * 4)
    failed = await run_turn(docent.graph, QUESTION, cache=cache)
    assert failed.output["degraded"]
    scripted_openai[1].faults.clear()
    assert not (await run_turn(docent.graph, PARAPHRASE, cache=cache)).output["cached"]


async def test_cache_off_serves_nothing(
    tmp_path: Path, embedder: OnnxMiniLMEmbedder, scripted_openai: tuple[str, ModelScript]
) -> None:
    settings = model_settings(tmp_path / "data", scripted_openai[0], cache="off")
    services = Services(settings, embedder=embedder)
    async with open_docent(settings, services) as docent:
        assert docent.services.answer_cache is None
        await run_turn(docent.graph, QUESTION, cache=docent.services.answer_cache)
        calls = model_calls(scripted_openai)
        again = await run_turn(docent.graph, QUESTION, cache=docent.services.answer_cache)
        assert not again.output["cached"] and model_calls(scripted_openai) == calls + 1


async def test_server_mode_replicas_share_answers_through_redis_and_an_ingest_invalidates_them(
    pg_url: str,
    tmp_path: Path,
    redis_prefix: str,
    embedder: OnnxMiniLMEmbedder,
    scripted_openai: tuple[str, ModelScript],
) -> None:
    settings = model_settings(
        tmp_path / "data",
        scripted_openai[0],
        database_url=pg_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
    )
    await upgraded(settings)
    async with AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(open_docent(settings, Services(settings, embedder=embedder)))
            for _ in range(2)
        ]
        await asyncio.to_thread(ingest, a.services, SAMPLE_CORPUS)
        cache_a, cache_b = cache_of(a), cache_of(b)
        assert isinstance(cache_b.store, RedisAnswerStore)
        first = await run_turn(a.graph, QUESTION, gate=a.turns, cache=cache_a)
        calls = model_calls(scripted_openai)
        served = await run_turn(b.graph, PARAPHRASE, gate=b.turns, cache=cache_b)
        assert served.output["cached"] and served.output["answer"] == first.output["answer"]
        assert model_calls(scripted_openai) == calls
        state = await a.graph.aget_state({"configurable": {"thread_id": served.thread_id}})
        assert state.values["messages"][0].content == PARAPHRASE

        note = tmp_path / "wiggler-note.md"
        note.write_text("# Wiggler note\n\nRed wigglers eat about half their body weight a day in scraps.\n")
        await asyncio.to_thread(ingest, a.services, note)
        again = await run_turn(b.graph, OTHER_PARAPHRASE, gate=b.turns, cache=cache_b)
        assert not again.output["cached"]
        assert model_calls(scripted_openai) == calls + 1
