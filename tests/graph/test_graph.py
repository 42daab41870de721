"""The four-node graph over real Chroma and SQLite (checkpoints and records) with the extractive answerer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig

from core.answering.extractive import NO_ANSWER
from core.answering.providers import UnknownModelError
from core.services import Services
from core.storage.checkpoints import open_checkpointer
from core.storage.keys import Principal
from core.storage.records import TurnRecord
from core.types import ANSWER_FIELDS, AnswerFields, DocentContext
from graph.build import DocentGraph, build_graph
from graph.state import InputState
from graph.turn import TURN_RUN_KEY, run_turn, stream_turn
from nodes.persist import RECORD_AFTER_KEY
from nodes.retrieve import build_search_query, is_follow_up


@pytest.fixture
async def graph(sample_services: Services) -> AsyncIterator[DocentGraph]:
    async with open_checkpointer(sample_services.settings) as checkpointer:
        yield build_graph(sample_services, checkpointer)


async def test_answer_cites_the_passage_that_holds_it(graph: DocentGraph) -> None:
    result = await run_turn(graph, "What temperature should a hot compost pile reach?")
    assert "55" in result.output["answer"]
    assert result.output["model"] == "extractive"
    cited = [c for c in result.output["citations"] if c["cited"]]
    assert any(c["source"].endswith("hot-vs-cold-composting.html") for c in cited)
    for citation in result.output["citations"]:
        assert (f"[{citation['n']}]" in result.output["answer"]) == citation["cited"]
    assert all(c["supported"] for c in cited) and result.output["unsupported_sentences"] == 0


async def test_the_smelly_compost_question_is_answered_from_the_section_on_smells(graph: DocentGraph) -> None:
    """Issue 14's example, with every default: the answer opens with the fix the corpus gives for a smelly
    pile, not with generic sentences."""
    result = await run_turn(graph, "How do I fix a smelly compost pile?")
    answer = result.output["answer"]
    assert answer.startswith(("A rotten-egg smell", "Turn the pile thoroughly")), answer
    assert "Turn the pile thoroughly and work in dry, coarse browns" in answer


async def test_pdf_citations_carry_the_page_number(graph: DocentGraph) -> None:
    result = await run_turn(graph, "How much do red wigglers eat per day?")
    assert "half their body weight" in result.output["answer"]
    assert {(c["source"].rsplit("/", 1)[-1], c["page"]) for c in result.output["citations"]} >= {
        ("compost-field-guide.pdf", 2)
    }


async def test_follow_up_query_carries_the_earlier_turn(graph: DocentGraph) -> None:
    first = await run_turn(graph, "How much do red wigglers eat per day?")
    await run_turn(graph, "And what bedding do they need?", thread_id=first.thread_id)
    state = await graph.aget_state({"configurable": {"thread_id": first.thread_id}})
    query = state.values["search_query"]
    assert "red wigglers" in query and "bedding" in query
    assert any(
        c["page"] == 2 and c["source"].endswith("compost-field-guide.pdf") for c in state.values["contexts"]
    )


async def test_thread_keeps_every_message_and_one_record_per_turn(
    graph: DocentGraph, sample_services: Services
) -> None:
    first = await run_turn(graph, "What temperature should a hot compost pile reach?")
    second = await run_turn(graph, "How often should it be turned?", thread_id=first.thread_id)
    state = await graph.aget_state({"configurable": {"thread_id": first.thread_id}})
    kinds = [type(m) for m in state.values["messages"]]
    assert kinds == [HumanMessage, AIMessage, HumanMessage, AIMessage]
    records = sample_services.records.turns(first.thread_id)
    assert [r.question for r in records] == [
        "What temperature should a hot compost pile reach?",
        "How often should it be turned?",
    ]
    assert [r.run_id for r in records] == [first.run_id, second.run_id]
    assert records[1].answer["answer"] == second.output["answer"]
    assert records[1].answer["model"] == "extractive"
    assert all(r.latency_ms > 0 for r in records)


async def test_unrelated_question_says_nothing_was_found(graph: DocentGraph) -> None:
    result = await run_turn(graph, "Who won the 1998 football world cup final?")
    assert result.output["answer"] == NO_ANSWER
    assert not any(c["cited"] for c in result.output["citations"])


async def test_context_knobs_change_k_and_reject_unknown_models(graph: DocentGraph) -> None:
    result = await run_turn(graph, "What is bokashi?", context=DocentContext(k=1))
    state = await graph.aget_state({"configurable": {"thread_id": result.thread_id}})
    assert len(state.values["contexts"]) == 1
    with pytest.raises(UnknownModelError, match="gpt-nonexistent"):
        await run_turn(graph, "What is bokashi?", context=DocentContext(model="gpt-nonexistent"))


def test_standalone_questions_are_searched_as_asked() -> None:
    messages: list[AnyMessage] = [
        HumanMessage("How do I start a worm bin?"),
        AIMessage("..."),
        HumanMessage("What temperature should a hot compost pile reach?"),
    ]
    assert (
        build_search_query(messages, history_turns=2) == "What temperature should a hot compost pile reach?"
    )


def test_follow_ups_are_recognised() -> None:
    assert is_follow_up("and how much does that save?")
    assert is_follow_up("Why?")
    assert not is_follow_up("How much can I save with a programmable thermostat?")


async def test_a_turn_whose_process_died_mid_way_is_undone_by_the_next_turn(graph: DocentGraph) -> None:
    first = await run_turn(graph, "What temperature should a hot compost pile reach?")
    config: RunnableConfig = {"configurable": {"thread_id": first.thread_id}}
    # As a replica killed after the question's checkpoint leaves it: stopped before retrieve, nobody running.
    async for _ in graph.astream(
        InputState(message="A question whose replica died?"), config, interrupt_after=["append_message"]
    ):
        pass
    assert (await graph.aget_state(config)).next == ("retrieve",)
    await run_turn(graph, "How often should it be turned?", thread_id=first.thread_id)
    state = await graph.aget_state(config)
    assert not state.next
    assert [m.content for m in state.values["messages"] if isinstance(m, HumanMessage)] == [
        "What temperature should a hot compost pile reach?",
        "How often should it be turned?",
    ]


async def _die_before_persist(graph: DocentGraph, thread: str, question: str, run_id: str) -> None:
    """A turn as a process that died once its answer was checkpointed, before `persist` ran."""
    config: RunnableConfig = {
        "configurable": {"thread_id": thread},
        "run_id": uuid.UUID(run_id),
        "metadata": {TURN_RUN_KEY: run_id},
    }
    async for _ in graph.astream(InputState(message=question), config, interrupt_before=["persist"]):
        pass
    assert (await graph.aget_state(config)).next == ("persist",)


def _asked(values: dict[str, object]) -> list[str]:
    messages = values.get("messages", [])
    assert isinstance(messages, list)
    return [str(m.content) for m in messages if isinstance(m, HumanMessage)]


async def test_a_retry_of_a_run_that_died_at_persist_replaces_it_instead_of_asking_twice(
    graph: DocentGraph,
) -> None:
    first, dead = str(uuid.uuid4()), str(uuid.uuid4())
    await run_turn(graph, "What temperature should a hot compost pile reach?", thread_id="t", run_id=first)
    await _die_before_persist(graph, "t", "How much do red wigglers eat per day?", dead)
    # The same run again (an idempotent retry whose record was not found): the dead attempt is undone.
    await run_turn(graph, "How much do red wigglers eat per day?", thread_id="t", run_id=dead)
    state = await graph.aget_state({"configurable": {"thread_id": "t"}})
    assert _asked(state.values) == [
        "What temperature should a hot compost pile reach?",
        "How much do red wigglers eat per day?",
    ]


async def test_another_turn_after_a_run_that_died_at_persist_keeps_that_answered_turn(
    graph: DocentGraph,
) -> None:
    await _die_before_persist(graph, "u", "How much do red wigglers eat per day?", str(uuid.uuid4()))
    await run_turn(graph, "What temperature should a hot compost pile reach?", thread_id="u")
    state = await graph.aget_state({"configurable": {"thread_id": "u"}})
    assert _asked(state.values) == [
        "How much do red wigglers eat per day?",  # answered; no records to ask whether it was recorded: kept
        "What temperature should a hot compost pile reach?",
    ]


@pytest.mark.parametrize("recorded", [True, False])
async def test_a_turn_that_died_at_persist_is_kept_only_if_its_record_was_written(
    graph: DocentGraph, sample_services: Services, recorded: bool
) -> None:
    records = sample_services.records
    thread, first, dead = uuid.uuid4().hex, str(uuid.uuid4()), str(uuid.uuid4())
    await run_turn(graph, "How often should it be turned?", thread_id=thread, run_id=first, records=records)
    await _die_before_persist(graph, thread, "How much do red wigglers eat per day?", dead)
    if recorded:  # the process died after persist wrote the record, before the last checkpoint
        answer = (await graph.aget_state({"configurable": {"thread_id": thread}})).values
        fields = cast(AnswerFields, {name: answer.get(name) for name in ANSWER_FIELDS})
        records.add_turn(TurnRecord(thread, "How much do red wigglers eat per day?", fields, 1.0, dead))
    # Another run (a new question, or a client that retried with a new run id): not the dead one again.
    await run_turn(
        graph, "What temperature should a hot compost pile reach?", thread_id=thread, records=records
    )
    state = await graph.aget_state({"configurable": {"thread_id": thread}})
    kept = ["How much do red wigglers eat per day?"] if recorded else []
    assert _asked(state.values) == [
        "How often should it be turned?",
        *kept,
        "What temperature should a hot compost pile reach?",
    ]
    assert [turn.question for turn in records.turns(thread)] == _asked(state.values)


async def test_a_turn_with_records_is_one_checkpoint_then_its_record(
    graph: DocentGraph, sample_services: Services
) -> None:
    records = sample_services.records
    result = await run_turn(graph, "How often should it be turned?", thread_id="one", records=records)
    config: RunnableConfig = {"configurable": {"thread_id": "one"}}
    [checkpoint] = [snapshot async for snapshot in graph.aget_state_history(config)]
    assert not checkpoint.next and (checkpoint.metadata or {}).get(RECORD_AFTER_KEY) is True
    assert (checkpoint.metadata or {}).get(TURN_RUN_KEY) == result.run_id
    [record] = records.turns("one")
    assert record.run_id == result.run_id and record.answer["answer"] == result.output["answer"]


@pytest.mark.parametrize("recorded", [True, False])
async def test_a_turn_killed_between_its_checkpoint_and_its_record_is_undone_by_the_next_turn(
    graph: DocentGraph, sample_services: Services, monkeypatch: pytest.MonkeyPatch, recorded: bool
) -> None:
    records = sample_services.records
    thread = uuid.uuid4().hex
    await run_turn(graph, "How often should it be turned?", thread_id=thread, records=records)
    if not recorded:  # as a process killed after the turn's checkpoint, before its record
        monkeypatch.setattr(records, "add_turn", lambda record: None)
    await run_turn(graph, "How much do red wigglers eat per day?", thread_id=thread, records=records)
    monkeypatch.undo()
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    assert len(_asked((await graph.aget_state(config)).values)) == 2

    await run_turn(graph, "What is bokashi?", thread_id=thread, records=records)

    state = await graph.aget_state(config)
    kept = ["How much do red wigglers eat per day?"] if recorded else []
    assert _asked(state.values) == ["How often should it be turned?", *kept, "What is bokashi?"]
    assert [turn.question for turn in records.turns(thread)] == _asked(state.values)


async def test_a_thread_made_for_a_turn_is_claimed_with_its_record_and_left_nowhere_when_it_fails(
    graph: DocentGraph, sample_services: Services
) -> None:
    records = sample_services.records
    owner = Principal(id="key-1", name="one", workspace="team-a", scopes=frozenset({"query"}))
    result = await run_turn(graph, "What is bokashi?", records=records, owner=owner)
    info = records.thread(result.thread_id)
    assert info is not None and (info.owner, info.workspace) == ("key-1", "team-a")
    with pytest.raises(UnknownModelError):
        await run_turn(
            graph, "What is bokashi?", context=DocentContext(model="gpt-x"), records=records, owner=owner
        )
    threads, total = records.threads("key-1", limit=10, offset=0, workspace="team-a")
    assert total == 1 and [t.id for t in threads] == [result.thread_id]  # the failed turn left no thread
    # A given thread is the caller's to claim first (the routes do): the owner is not applied to it.
    await run_turn(graph, "What is bokashi?", thread_id="given", records=records, owner=owner)
    given = records.thread("given")
    assert given is not None and given.owner != "key-1"


async def test_a_streamed_turn_names_its_run_in_its_checkpoints(graph: DocentGraph) -> None:
    events = [event async for event in stream_turn(graph, "How often should it be turned?", thread_id="s")]
    state = await graph.aget_state({"configurable": {"thread_id": "s"}})
    assert (state.metadata or {}).get(TURN_RUN_KEY) == events[0][1]["run_id"]
