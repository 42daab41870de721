"""One conversational turn through the compiled graph: the single entry point the API and CLI share,
waited for whole (`run_turn`) or streamed as events (`stream_turn`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import anyio
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import StateSnapshot

from core.answering.cache import AnswerCache, CacheProbe
from core.answering.output_guard import OutputGuard, StreamReview, withheld
from core.errors import unavailable
from core.storage.keys import Principal
from core.storage.records import TurnRecord, TurnRecords
from core.types import (
    ANSWER_FIELDS,
    AnswerFields,
    Citation,
    DocentContext,
    Passage,
    PriorMessage,
    TurnOutput,
    TurnResult,
    citation_of,
    turn_output,
)
from graph.build import DocentGraph
from graph.multitask import TurnGate
from graph.state import InputState
from nodes.persist import RECORD_AFTER_KEY, turn_record, write_record

log = logging.getLogger(__name__)

EventName = Literal["metadata", "sources", "token", "error", "end"]
TurnEvent = tuple[EventName, dict[str, Any]]


@dataclass
class _Turn:
    persisting: bool = False
    """The turn's record is being written (or, in two runs, the persist node has started): the turn is
    answered and is let finish, whatever its caller does."""
    finished: bool = False
    """The graph ran to its end: the turn is recorded and checkpointed."""
    first: bool = False
    """The thread held no messages when the turn began: a first turn, which the answer cache may serve."""
    owner: Principal | None = None
    """Whom a thread made for this turn is claimed for, in the transaction of the turn's record."""
    values: dict[str, Any] = field(default_factory=dict)
    """What this turn's nodes wrote, merged in order (its question, passages and answer)."""

    def record(self, record: TurnRecord) -> TurnRecord:
        """`record`, carrying the claim of a thread made for this turn."""
        if self.owner is None:
            return record
        return replace(record, owner=self.owner.id, workspace=self.owner.workspace)


TURN_RUN_KEY = "docent_run_id"
"""Checkpoint metadata: the run id of the turn that wrote the checkpoint."""


@asynccontextmanager
async def _atomic_turn(
    graph: DocentGraph,
    thread_id: str,
    gate: TurnGate | None,
    run_id: str | None = None,
    records: TurnRecords | None = None,
    fresh: bool = False,
    owner: Principal | None = None,
) -> AsyncIterator[_Turn]:
    """Run the block as the thread's only turn; if it fails or is cancelled before the graph finished, put the
    thread's checkpoint back to where it was, so a turn that was not answered leaves nothing behind (not even
    its question). A turn left part-way by a dead process is undone first (`_recovered`). `fresh`: the
    thread was made for this turn (a new random id), so it has no checkpoint to read; `owner`: whom it is
    claimed for, with the turn's record."""
    async with gate.turn(thread_id) if gate is not None else nullcontext():
        back: RunnableConfig = {}
        turn = _Turn(first=True, owner=owner if fresh else None)
        if not fresh:
            before = await _recovered(graph, thread_id, run_id, records)
            back, turn.first = before.config, not (before.values or {}).get("messages")
        try:
            yield turn
        except BaseException as exc:
            if not turn.finished and not (fresh and _database_down(exc)):
                with anyio.CancelScope(shield=True):
                    await _roll_back(graph, thread_id, back)
            raise


def _database_down(exc: BaseException) -> bool:
    """The turn failed because the database cannot be reached. A thread made for the turn is then not rolled
    back (which would wait out the pool's timeout again before the caller hears of it): its checkpoint was
    not written, or (the database lost after it) is marked as unrecorded, under an id nobody was given a
    claim to, and undone by any next turn on it (`_recovered`)."""
    down = unavailable(exc)
    return down is not None and down.dependency == "database"


async def _recovered(
    graph: DocentGraph, thread_id: str, run_id: str | None, records: TurnRecords | None
) -> StateSnapshot:
    """The thread's state, once a turn a dead process left part-way is undone. One left at `persist`
    (answered) is kept only if its record was written (`records`; without them, it is kept), and never when
    this run is that same run again (`run_id`: an idempotent retry, which runs only when the first run's
    record was not found); one checkpointed before its record (`RECORD_AFTER_KEY`) is kept only if that
    record was written. So the thread's checkpoint and its records hold the same turns, and no question is
    asked twice."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    before = await graph.aget_state(config)
    if before.next:
        named = (before.metadata or {}).get(TURN_RUN_KEY)
        dead_run = named if isinstance(named, str) else None
        keep = tuple(before.next) == ANSWERED and dead_run != run_id
        if keep and records is not None and dead_run is not None:
            keep = await asyncio.to_thread(records.by_run_id, dead_run) is not None
        if not keep:
            return await _undo_dead_turn(graph, thread_id, config, dead_run)
    elif records is not None and (before.metadata or {}).get(RECORD_AFTER_KEY):
        return await _checked_recorded_turn(graph, thread_id, config, before, records)
    return before


async def _roll_back(graph: DocentGraph, thread_id: str, before: RunnableConfig) -> None:
    """The thread's latest checkpoint becomes `before` again (a fork of it); a thread that had none is
    emptied."""
    if before.get("configurable", {}).get("checkpoint_id"):
        await graph.aupdate_state(before, None)
    elif isinstance(graph.checkpointer, BaseCheckpointSaver):
        await graph.checkpointer.adelete_thread(thread_id)


ANSWERED = ("persist",)
"""What is left of a turn whose answer is in the checkpoint: only its record (which may have been written)."""


async def _undo_dead_turn(
    graph: DocentGraph, thread_id: str, config: RunnableConfig, redone: str | None = None
) -> StateSnapshot:
    """The thread's last turn stopped part-way and nobody runs it (this turn holds the thread): its process
    died. Put the checkpoint back to the last answered turn, so that its question is not asked twice.
    `redone`: a run id whose checkpoints are passed over (that run is being run again)."""
    async for snapshot in graph.aget_state_history(config):
        if redone is not None and (snapshot.metadata or {}).get(TURN_RUN_KEY) == redone:
            continue
        if not snapshot.next or tuple(snapshot.next) == ANSWERED:
            log.warning("thread %s: undoing a turn its process left unfinished", thread_id)
            await _roll_back(graph, thread_id, snapshot.config)
            return await graph.aget_state(config)
    await _roll_back(graph, thread_id, {})
    return await graph.aget_state(config)


async def _checked_recorded_turn(
    graph: DocentGraph,
    thread_id: str,
    config: RunnableConfig,
    before: StateSnapshot,
    records: TurnRecords,
) -> StateSnapshot:
    """The thread's last turn wrote its checkpoint before its record (`RECORD_AFTER_KEY`): kept if its
    record was written, else (its process died between the two, before it answered) put back to the
    checkpoint before it, as a turn left part-way is."""
    named = (before.metadata or {}).get(TURN_RUN_KEY)
    if isinstance(named, str) and await asyncio.to_thread(records.by_run_id, named) is not None:
        return before
    log.warning("thread %s: undoing a turn its process left unrecorded", thread_id)
    await _roll_back(graph, thread_id, before.parent_config or {})
    return await graph.aget_state(config)


def _records(records: TurnRecords | None, cache: AnswerCache | None) -> TurnRecords | None:
    """The turn records a turn checks a dead turn against: those given, else the answer cache's."""
    return records if records is not None or cache is None else cache.records


def new_thread_id() -> str:
    """A fresh conversation id."""
    return uuid.uuid4().hex


def _input(message: str, history: Sequence[PriorMessage] | None) -> InputState:
    state = InputState(message=message)
    if history:
        state["history"] = list(history)
    return state


async def run_turn(
    graph: DocentGraph,
    message: str,
    *,
    thread_id: str | None = None,
    context: DocentContext | None = None,
    history: Sequence[PriorMessage] | None = None,
    gate: TurnGate | None = None,
    run_id: str | None = None,
    cache: AnswerCache | None = None,
    records: TurnRecords | None = None,
    lookup: asyncio.Future[CacheProbe] | None = None,
    owner: Principal | None = None,
) -> TurnResult:
    """Ask one question on a thread (a new thread when none is given) and wait for the answer. `history`
    (a client-held conversation) goes before the question; give it only for a new thread. `gate`: one turn at
    a time per thread (ThreadBusyError). `run_id`: the run's id (a UUID; default: a new one), kept in the
    turn's record. A turn that fails or is cancelled leaves the checkpoint as it was. `cache`: the answer
    cache (Services.answer_cache), which serves and keeps the answers of first turns (`cached: true` when
    served, without the graph's nodes). `records`: the turn records (Services.records), so that a turn a dead
    process left answered but unrecorded is undone, not kept under this one. `lookup`: the cache's lookup
    of the question, begun by the caller (`begin_lookup`) for a thread it made for this turn; begun here
    when no thread is given. `owner`: with no thread given, the key the new thread is claimed for, in the
    transaction of the turn's record (with `records`, or the cache's).
    """
    thread = thread_id or new_thread_id()
    run = uuid.UUID(run_id) if run_id else uuid.uuid4()
    config: RunnableConfig = {
        "configurable": {"thread_id": thread},
        "run_id": run,
        "metadata": {TURN_RUN_KEY: str(run)},  # kept in each checkpoint's metadata
    }
    knobs = context or DocentContext()
    started = time.perf_counter()
    early = lookup or _own_lookup(cache, message, knobs, thread_id, history)
    kept = _records(records, cache)
    fresh = thread_id is None
    async with _atomic_turn(graph, thread, gate, str(run), kept, fresh, owner) as turn:
        probe = await _cache_probe(cache, turn, message, knobs, history, early)
        if cache is not None and probe is not None and probe.hit is not None:
            served = await _serve_cached(graph, cache, probe, message, thread, str(run), turn, started)
            return TurnResult(run_id=str(run), output=served)
        async for _part in _graph_parts(graph, _input(message, history), config, knobs, turn, kept, ()):
            pass
    output = turn_output(thread, turn.values)
    await _remember(cache, probe, message, output)
    return TurnResult(run_id=str(run), output=output)


async def _cache_probe(
    cache: AnswerCache | None,
    turn: _Turn,
    message: str,
    context: DocentContext,
    history: Sequence[PriorMessage] | None,
    early: asyncio.Future[CacheProbe] | None = None,
) -> CacheProbe | None:
    """The answer cache's lookup, for a first turn that brings no history of its own (None: not a turn the
    cache serves or keeps). Its embedding of the question is the one retrieval then reuses. `early`: that
    lookup, begun before the thread's checkpoint was read (`begin_lookup`)."""
    if cache is None or history or not turn.first:
        return None  # an early lookup, if any, is dropped
    if early is not None:
        return await early
    return await asyncio.to_thread(cache.probe, message, context)


def begin_lookup(
    cache: AnswerCache | None,
    message: str,
    context: DocentContext,
    history: Sequence[PriorMessage] | None = None,
) -> asyncio.Future[CacheProbe] | None:
    """The answer cache's lookup of a turn that is certainly a first one (its thread was made for it),
    begun now in a worker thread, to run while the caller claims the thread and the turn reads its
    checkpoint; give it to `run_turn` or `stream_turn` as `lookup`. None when the cache would not serve the
    turn. Any other turn is looked up only once it is known to be a first one (a follow-up searches with
    another text). An exception the lookup raises is the awaiter's, not logged when nobody awaits it."""
    if cache is None or history:
        return None
    started = asyncio.ensure_future(asyncio.to_thread(cache.probe, message, context))
    started.add_done_callback(lambda done: done.cancelled() or done.exception())
    return started


def _own_lookup(
    cache: AnswerCache | None,
    message: str,
    context: DocentContext,
    thread_id: str | None,
    history: Sequence[PriorMessage] | None,
) -> asyncio.Future[CacheProbe] | None:
    """A turn given no thread makes its own, so it begins the lookup itself (`begin_lookup`)."""
    return begin_lookup(cache, message, context, history) if thread_id is None else None


async def _remember(
    cache: AnswerCache | None, probe: CacheProbe | None, message: str, answer: AnswerFields
) -> None:
    """Keep a first turn's answer for the questions close to it (a miss's; `cache.remember` says which)."""
    if cache is not None and probe is not None and probe.hit is None:
        await asyncio.to_thread(cache.remember, probe, message, answer)


async def _serve_cached(
    graph: DocentGraph,
    cache: AnswerCache,
    probe: CacheProbe,
    message: str,
    thread: str,
    run_id: str,
    turn: _Turn,
    started: float,
) -> TurnOutput:
    """A cache hit as a turn of record, without the graph's nodes: one checkpoint holds the finished turn (the
    question and the stored answer, marked `RECORD_AFTER_KEY`), then the record is written, as a graph turn
    does. A process killed between the two leaves a marked checkpoint without its record, which the thread's
    next turn undoes (`_atomic_turn`); the caller got no answer. The answer cost nothing: no usage, cost 0."""
    assert probe.hit is not None
    question = message.strip()
    stored = {name: probe.hit.answer.get(name) for name in ANSWER_FIELDS if name != "cached"}
    answer = cast(AnswerFields, {**stored, "usage": None, "cost": 0.0})
    config: RunnableConfig = {
        "configurable": {"thread_id": thread},
        "metadata": {TURN_RUN_KEY: run_id, RECORD_AFTER_KEY: True},
    }
    reply = AIMessage(content=answer["answer"], response_metadata={"model": answer["model"], "cached": True})
    values: dict[str, Any] = {
        **answer,
        "message": message,
        "history": [],
        "question": question,
        "search_query": question,
        "contexts": [],
        "started_at": time.time() - (time.perf_counter() - started),
        "model_ms": 0.0,
        "messages": [HumanMessage(content=question), reply],
    }
    await graph.aupdate_state(config, values, as_node="persist")
    record = TurnRecord(
        thread_id=thread,
        run_id=run_id,
        question=question,
        answer=cast(AnswerFields, {**answer, "cached": True}),
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    await write_record(cache.records, turn.record(record))
    turn.finished = True
    return cast(TurnOutput, {**turn_output(thread, dict(answer)), "cached": True})


async def _cached_events(
    graph: DocentGraph,
    cache: AnswerCache,
    probe: CacheProbe,
    message: str,
    thread: str,
    turn: _Turn,
) -> AsyncGenerator[TurnEvent, None]:
    """A cache hit as a stream's events: `metadata`, `sources` (the stored answer's citations), the whole
    answer as one `token`, and `end` (`cached: true`) once the turn is recorded."""
    assert probe.hit is not None
    clock = _TurnClock(start=time.perf_counter())
    run_id = str(uuid.uuid4())
    yield "metadata", {"thread_id": thread, "run_id": run_id}
    citations = probe.hit.answer["citations"]
    yield "sources", {"sources": [{**c, "cited": False, "supported": None} for c in citations]}
    if text := probe.hit.answer["answer"]:
        clock.first_token = time.perf_counter()
        yield "token", {"text": text}
    output = await _serve_cached(graph, cache, probe, message, thread, run_id, turn, clock.start)
    yield "end", {**output, "run_id": run_id, "timings": clock.timings(time.perf_counter())}


def numbered_sources(passages: Sequence[Passage], guard: OutputGuard | None = None) -> list[Citation]:
    """The retrieved passages as the numbered sources the answer may cite as [n] (`cited` false: which of
    them the answer cites is known at `end`); under `guard`'s PII pass, with their snippets redacted."""
    sources = [citation_of(n, p) for n, p in enumerate(passages, start=1)]
    if guard is not None and guard.redact_pii:
        for source in sources:
            source["snippet"] = guard.redact(source["snippet"])[0]
    return sources


@dataclass
class _TurnClock:
    """`time.perf_counter()` instants of one streamed turn, for the `end` event's `timings`."""

    start: float
    retrieve_start: float | None = None
    retrieve_end: float | None = None
    model_request: float | None = None
    model_first_chunk: float | None = None
    first_token: float | None = None

    def timings(self, end: float) -> dict[str, float | None]:
        """Milliseconds (0.1 ms), None where the turn had no such instant (the extractive answerer sends
        no model request).
        """
        return {
            "retrieve_ms": _ms(self.retrieve_start, self.retrieve_end),
            "to_model_request_ms": _ms(self.start, self.model_request),
            "model_ttft_ms": _ms(self.model_request, self.model_first_chunk),
            "first_chunk_to_token_ms": _ms(self.model_first_chunk, self.first_token),
            "first_token_ms": _ms(self.start, self.first_token),
            "total_ms": _ms(self.start, end),
        }


def _ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round((end - start) * 1000, 1)


async def stream_turn(
    graph: DocentGraph,
    message: str,
    *,
    thread_id: str | None = None,
    context: DocentContext | None = None,
    history: Sequence[PriorMessage] | None = None,
    gate: TurnGate | None = None,
    guard: OutputGuard | None = None,
    cache: AnswerCache | None = None,
    records: TurnRecords | None = None,
    lookup: asyncio.Future[CacheProbe] | None = None,
    owner: Principal | None = None,
) -> AsyncIterator[TurnEvent]:
    """One turn as events: `metadata`, `sources` (before any token), `token`s from the summarize node,
    `error` if the model failed mid-stream, and `end` once the turn is recorded. `end.answer` is the answer of
    record: after an `error` it replaces the tokens streamed so far. `end.timings` splits the turn's time in
    this process: turn start to the model request (retrieval included), the model's time to its first
    chunk, that chunk to the first `token` event, and the whole turn. Closing the iterator cancels the turn
    before it is recorded, and leaves the thread's checkpoint as it was. `gate`: as for `run_turn`; a busy
    thread raises ThreadBusyError before any event. `guard`: the output guardrail the graph's answers pass
    (Services.output_guard): tokens are reviewed before they are sent, and a stream that trips a blocked
    pattern sends no more of them and ends with an `error` (reason `output_blocked`) and the withheld answer
    in `end`. `cache`: as for `run_turn`; a hit streams the stored answer as one `token`. `records`: as for
    `run_turn`. `lookup`, `owner`: as for `run_turn`.
    """
    thread = thread_id or new_thread_id()
    knobs = context or DocentContext()
    early = lookup or _own_lookup(cache, message, knobs, thread_id, history)
    kept = _records(records, cache)
    fresh = thread_id is None
    async with _atomic_turn(graph, thread, gate, records=kept, fresh=fresh, owner=owner) as turn:
        probe = await _cache_probe(cache, turn, message, knobs, history, early)
        if cache is not None and probe is not None and probe.hit is not None:
            events = _cached_events(graph, cache, probe, message, thread, turn)
        else:
            events = _stream_events(graph, message, thread, context, history, turn, kept, guard)
        # Closing `events` first stops the graph, then the rollback (if any) runs on a quiet thread.
        async with aclosing(events):
            async for event in events:
                if event[0] == "end":
                    await _remember(cache, probe, message, cast(AnswerFields, event[1]))
                yield event


async def _stream_events(
    graph: DocentGraph,
    message: str,
    thread: str,
    context: DocentContext | None,
    history: Sequence[PriorMessage] | None,
    turn: _Turn,
    records: TurnRecords | None,
    guard: OutputGuard | None = None,
) -> AsyncGenerator[TurnEvent, None]:
    clock = _TurnClock(start=time.perf_counter())
    run_id = uuid.uuid4()
    config: RunnableConfig = {
        "configurable": {"thread_id": thread},
        "run_id": run_id,
        "metadata": {TURN_RUN_KEY: str(run_id)},
    }
    yield "metadata", {"thread_id": thread, "run_id": str(run_id)}
    answer: dict[str, Any] = {}
    streamed = failed = False
    review = StreamReview(guard) if guard is not None and guard.active else None
    async for mode, payload in _graph_parts(
        graph, _input(message, history), config, context or DocentContext(), turn, records
    ):
        if mode == "messages":
            chunk, meta = payload
            if meta.get("langgraph_node") != "summarize" or not chunk.text:
                continue
            # An answerer that does not stream (extractive) hands its whole answer over as one AIMessage
            # (already reviewed; not sent when withheld); after a streamed answer, it only repeats the tokens.
            if isinstance(chunk, AIMessageChunk):
                streamed = True
                text = chunk.text if review is None else review.feed(chunk.text)
            elif not isinstance(chunk, AIMessage) or streamed:
                continue
            else:
                text = "" if withheld(chunk.response_metadata.get("output_rule")) else chunk.text
            if not text:
                continue
            if clock.first_token is None:
                clock.first_token = time.perf_counter()
            yield "token", {"text": text}
        elif mode == "updates":
            for node, update in payload.items():
                if node == "retrieve" and update:
                    yield "sources", {"sources": numbered_sources(update["contexts"], guard)}
                elif node == "summarize" and update:
                    answer = update
        elif mode == "tasks" and payload.get("name") == "retrieve":
            if "triggers" in payload:
                clock.retrieve_start = time.perf_counter()
            else:
                clock.retrieve_end = time.perf_counter()
        elif mode == "custom" and payload.get("event") == "error":
            failed = True
            yield "error", {"reason": payload.get("reason")}
        elif mode == "custom" and payload.get("event") == "model_timing":
            clock.model_request = payload.get("requested_at")
            clock.model_first_chunk = payload.get("first_chunk_at")
    end = turn_output(thread, answer)
    if review is not None and streamed and not failed and (rest := review.finish()):
        yield "token", {"text": rest}
    if withheld(end.get("output_rule")) and not failed:
        yield "error", {"reason": "output_blocked", "rule": end["output_rule"]}
    yield "end", {**end, "run_id": str(run_id), "timings": clock.timings(time.perf_counter())}


async def _graph_parts(
    graph: DocentGraph,
    state: InputState,
    config: RunnableConfig,
    context: DocentContext,
    turn: _Turn,
    records: TurnRecords | None,
    modes: Sequence[str] = ("updates", "messages", "custom", "tasks"),
) -> AsyncIterator[tuple[str, Any]]:
    """graph.astream run in its own task. However the consumer is stopped (a plain task cancel, or an anyio
    cancel scope as sse-starlette uses, which LangGraph would wait out), the graph task is cancelled and
    awaited, so the model's stream is closed before this returns; except once the turn's record is being
    written: the turn is then answered, and is let finish (a record and its checkpoint, both or neither).

    With `records`, one run, checkpointed once as it ends ("exit" durability, the checkpoint marked
    `RECORD_AFTER_KEY`), then the record is written here: a process killed between the two leaves a marked
    checkpoint without its record, which the thread's next turn undoes (`_atomic_turn`). Without them, two
    runs, each checkpointed once as it ends: the first stops before persist, with the answer in its
    checkpoint; the second runs persist, which writes the record, and checkpoints the finished turn.
    `modes`: the stream parts handed on; whatever they are, the nodes' updates are merged into
    `turn.values` (the turn's output and record are made from them, not from a copy of the whole state
    after every step)."""
    parts: asyncio.Queue[tuple[str, Any] | BaseException | None] = asyncio.Queue()
    runs: tuple[tuple[InputState | None, dict[str, Any]], ...]
    if records is not None:
        metadata = {**config.get("metadata", {}), RECORD_AFTER_KEY: True}
        config = {**config, "metadata": metadata}
        runs = ((state, {}),)
    else:
        runs = ((state, {"interrupt_before": list(ANSWERED)}), (None, {}))
    streamed = list(modes) if "updates" in modes else [*modes, "updates"]

    async def produce() -> None:
        try:
            for given, options in runs:
                if given is None:
                    turn.persisting = True
                stream = graph.astream(  # type: ignore[call-overload]
                    given, config, context=context, stream_mode=streamed, durability="exit", **options
                )
                async for part in cast(AsyncIterator[tuple[str, Any]], stream):
                    if _is_interrupt(part):
                        continue
                    if part[0] == "updates":
                        for update in part[1].values():
                            if isinstance(update, dict):
                                turn.values.update(update)
                        if "updates" not in modes:
                            continue
                    parts.put_nowait(part)
            if records is not None:
                turn.persisting = True
                thread = str(config.get("configurable", {}).get("thread_id", ""))
                run = config.get("run_id")
                record = turn_record(turn.values, thread, str(run) if run else None)
                await write_record(records, turn.record(record))
            turn.finished = True
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
            if not turn.persisting:
                producer.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([producer])


def _is_interrupt(part: tuple[str, Any]) -> bool:
    """The `updates` part that says the first run stopped before persist (as it was told to)."""
    mode, payload = part
    return mode == "updates" and isinstance(payload, dict) and "__interrupt__" in payload
