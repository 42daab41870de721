"""POST /stream: one turn as Server-Sent Events, in Docent's events (metadata, sources, token..., [error],
end) or in LangServe's (metadata, data..., [error], end) for LangServe's clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any, Literal, NamedTuple

from fastapi import Query, Request
from langchain_core.documents import Document
from langchain_core.messages import AIMessageChunk
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import HTTPConnection

from api.deps import DocentDep
from api.routes import docent_router
from api.schemas import TURN_ERRORS, InvokeRequest
from api.security.auth import QueryCaller
from api.security.limits import check_question
from api.security.ownership import thread_and_lookup
from api.security.workspaces import turn_context
from core.answering.cache import CacheProbe
from core.errors import unavailable
from core.retrieval.vector_store import CollectionError
from core.storage.keys import Principal
from core.types import DocentContext, turn_output
from graph.build import Docent
from graph.multitask import ThreadBusyError
from graph.turn import stream_turn

router = docent_router(tags=["stream"])

# Proxies must pass each event on as it comes, and nobody may cache a live answer.
STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}
STREAM_EXAMPLE = """\
event: metadata
data: {"thread_id": "0d7bd59d38914dec8f92b3633fa64c19", "run_id": "3a303ca7-6b98-4ec9-bfc1-0206e5e7d382"}

event: sources
data: {"sources": [{"n": 1, "source": "data/sample/compost-field-guide.pdf", "title": "Compost Field Guide", \
"page": 4, "snippet": "Bokashi is a Japanese method that ferments food scraps in an airtight bucket.", \
"cited": false, "supported": null}]}

event: token
data: {"text": "Bokashi is a Japanese method that ferments food scraps in an airtight bucket. [1]"}

event: end
data: {"answer": "Bokashi is a Japanese method that ferments food scraps in an airtight bucket. [1]", \
"citations": [{"n": 1, "source": "data/sample/compost-field-guide.pdf", "title": "Compost Field Guide", \
"page": 4, "snippet": "Bokashi is a Japanese method that ferments food scraps in an airtight bucket.", \
"cited": true, "supported": true}], \
"thread_id": "0d7bd59d38914dec8f92b3633fa64c19", "model": "extractive", "usage": null, "cost": 0.0, \
"degraded": false, "degraded_reason": null, "unsupported_sentences": 0, "output_rule": null, \
"run_id": "3a303ca7-6b98-4ec9-bfc1-0206e5e7d382", \
"timings": {"retrieve_ms": 14.7, "first_token_ms": 21.1, "total_ms": 29.6}}

"""

STREAM_EVENTS_EXAMPLE = """\
event: metadata
data: {"run_id": "3a303ca7-6b98-4ec9-bfc1-0206e5e7d382"}

event: data
data: {"event": "on_chain_start", "name": "docent", "run_id": "3a303ca7-6b98-4ec9-bfc1-0206e5e7d382", \
"data": {"input": {"message": "What is bokashi?"}}, "tags": [], \
"metadata": {"thread_id": "0d7bd59d38914dec8f92b3633fa64c19"}, "parent_ids": []}

event: data
data: {"event": "on_chat_model_stream", "name": "chat_model", \
"run_id": "3a303ca7-6b98-4ec9-bfc1-0206e5e7d382", \
"data": {"chunk": {"content": "Bokashi ferments food scraps. [1]", "type": "AIMessageChunk"}}, \
"tags": [], "metadata": {"thread_id": "0d7bd59d38914dec8f92b3633fa64c19"}, "parent_ids": []}

event: end

"""


class CheckedTurn(NamedTuple):
    """A streamed turn let through: its thread (owned by the caller; None: the turn makes one, claimed for
    `owner`), run context and, on a thread made for it, the answer cache's lookup already under way
    (graph.turn.begin_lookup)."""

    thread: str | None
    context: DocentContext
    owner: Principal
    lookup: asyncio.Future[CacheProbe] | None = None


async def turn_events(
    docent: Docent, body: InvokeRequest, checked: CheckedTurn
) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
    """The events of one turn on a thread the caller owns, shared by /stream and /ws. A collection error or a
    busy thread, which /invoke answers with a 409, and a dependency outage (/invoke's 503) become an in-band
    `error` event: the stream has begun.
    """
    try:
        async for name, data in stream_turn(
            docent.graph,
            body.input.message,
            thread_id=checked.thread,
            context=checked.context,
            gate=docent.turns,
            guard=docent.services.output_guard,
            cache=docent.services.answer_cache,
            records=docent.services.records,
            lookup=checked.lookup,
            owner=checked.owner,
        ):
            yield name, data
    except (CollectionError, ThreadBusyError) as exc:
        yield "error", {"detail": str(exc), "status": 409}
    except Exception as exc:  # a store, Redis or the database went away mid-turn: 503, as /invoke says
        if (down := unavailable(exc)) is None:
            raise
        yield "error", {"detail": f"{down.dependency} is unavailable: {down}", "status": 503}


StreamFormat = Literal["docent", "langserve"]
Event = tuple[str, dict[str, Any] | None]  # an event's name and data (None: no data line)


def _langserve_error(data: dict[str, Any]) -> Event:
    """A Docent `error` that ends the turn, as LangServe's `error` event (its client raises on it)."""
    return "error", {"status_code": data.get("status", 500), "message": data["detail"]}


def _output(end: dict[str, Any]) -> dict[str, Any]:
    """/invoke's `output` from an `end` event (which adds `run_id` and `timings`)."""
    return dict(turn_output(end["thread_id"], end))


async def langserve_events(
    events: AsyncGenerator[tuple[str, dict[str, Any]]],
) -> AsyncGenerator[Event]:
    """Docent's events in LangServe's stream protocol: `metadata`, then `data` chunks whose key-wise sum
    (strings and lists concatenate) is /invoke's `output` — one `{"answer": piece}` per token and a last chunk
    with the rest of the fields — then `end`; a failure is an `error` event with `status_code` and `message`.
    """
    streamed = ""
    async with aclosing(events):
        async for name, data in events:
            if name == "metadata":
                yield "metadata", data
            elif name == "token":
                streamed += data["text"]
                yield "data", {"answer": data["text"]}
            elif name == "error" and "detail" in data:  # the turn cannot go on
                yield _langserve_error(data)
                return
            # (An `error` with a `reason` is a model failing mid-stream, a fallback answering in `end`, or
            # the output guardrail withholding the answer, which `end` replaces.)
            elif name == "end":
                rest = _output(data)
                answer = str(rest.pop("answer") or "")
                if answer.startswith(streamed):
                    if len(answer) > len(streamed):
                        rest["answer"] = answer[len(streamed) :]
                else:  # a fallback's answer replaced the failed model's tokens; a sum cannot take them back
                    rest["answer"] = "\n\n" + answer
                yield "data", rest
                yield "end", None
                return


def _sse(events: AsyncGenerator[Event]) -> EventSourceResponse:
    """A turn's events as a Server-Sent Events response (an event without data has no `data:` line)."""

    async def frames() -> AsyncIterator[ServerSentEvent]:
        async with aclosing(events):
            async for name, data in events:
                yield ServerSentEvent(event=name, data=None if data is None else json.dumps(data))

    return EventSourceResponse(frames(), headers=STREAM_HEADERS, ping=15)


async def checked_turn(
    body: InvokeRequest, request: HTTPConnection, docent: Docent, caller: Principal
) -> CheckedTurn:
    """The thread (owned by the caller) and run context of a streamed turn; refusals are HTTP errors, before
    any event."""
    knobs, services = body.config.configurable, docent.services
    services.answerers.get(knobs.model)  # an unknown model is a 400, before any event
    check_question(request, body.input.message, knobs)
    context = await turn_context(services, caller, body.run_context())
    thread, lookup = await thread_and_lookup(services, caller, knobs.thread_id, body.input.message, context)
    return CheckedTurn(thread, context, caller, lookup)


@router.post(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"example": STREAM_EXAMPLE}},
            "description": "metadata, sources, token…, error?, end (`format=langserve`: metadata, data…, "
            "error?, end)",
        },
        **TURN_ERRORS,
    },
)
async def stream(
    body: InvokeRequest,
    request: Request,
    docent: DocentDep,
    caller: QueryCaller,
    format: Annotated[
        StreamFormat | None,
        Query(
            description="`docent` (Docent's events, the default) or `langserve` (LangServe's protocol, the "
            "default for a body carrying `kwargs`, which LangServe's clients always send).",
            examples=["langserve"],
        ),
    ] = None,
) -> EventSourceResponse:
    """Answer like /invoke, streaming tokens as they are generated. A client that disconnects cancels the
    turn, which is then not recorded.
    """
    langserve = format == "langserve" or (format is None and "langserve_kwargs" in body.model_fields_set)
    turn = turn_events(docent, body, await checked_turn(body, request, docent, caller))
    return _sse(langserve_events(turn) if langserve else turn)


class StreamEventsRequest(InvokeRequest):  # type: ignore[no-redef]  # pydantic-mypy: alias "kwargs"
    """Body of POST /stream_events (LangServe's `astream_events`): /invoke's body and event filters."""

    include_names: list[str] | None = None
    include_types: list[str] | None = None
    include_tags: list[str] | None = None
    exclude_names: list[str] | None = None
    exclude_types: list[str] | None = None
    exclude_tags: list[str] | None = None

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether the filters let this event through (LangChain's rules: any include matches, no exclude)."""
        name, kind, tags = event["name"], event["event"].split("_", 1)[1].rsplit("_", 1)[0], event["tags"]
        includes = (self.include_names, self.include_types, self.include_tags)
        if any(f is not None for f in includes) and not (
            name in (self.include_names or ())
            or kind in (self.include_types or ())
            or any(t in (self.include_tags or ()) for t in tags)
        ):
            return False
        return not (
            name in (self.exclude_names or ())
            or kind in (self.exclude_types or ())
            or any(t in (self.exclude_tags or ()) for t in tags)
        )


async def stream_events_of(
    body: StreamEventsRequest, events: AsyncGenerator[tuple[str, dict[str, Any]]]
) -> AsyncGenerator[Event]:
    """Docent's events as LangChain's `astream_events` (v2) events in LangServe's protocol: the turn is a
    `docent` chain, its passages a `retrieve` retriever's output (Documents), its tokens
    `on_chat_model_stream` chunks (AIMessageChunk), its answer the chain's output."""
    run_id, thread_id = "", ""
    model = body.config.configurable.model or "chat_model"

    def event(kind: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "event": kind,
            "name": name,
            "run_id": run_id,
            "data": data,
            "tags": [],
            "metadata": {"thread_id": thread_id},
            "parent_ids": [],
        }

    async with aclosing(events):
        async for name, data in events:
            out: list[dict[str, Any]] = []
            if name == "metadata":
                run_id, thread_id = data["run_id"], data["thread_id"]
                yield "metadata", {"run_id": run_id}
                out.append(event("on_chain_start", "docent", {"input": body.input.model_dump()}))
            elif name == "sources":
                documents = [
                    Document(page_content=s.get("snippet", ""), metadata=s).model_dump()
                    for s in data["sources"]
                ]
                out.append(event("on_retriever_end", "retrieve", {"output": documents}))
            elif name == "token":
                chunk = AIMessageChunk(content=data["text"]).model_dump()
                out.append(event("on_chat_model_stream", model, {"chunk": chunk}))
            elif name == "error" and "detail" in data:
                yield _langserve_error(data)
                return
            elif name == "end":
                out.append(event("on_chain_end", "docent", {"output": _output(data)}))
            for item in out:
                if body.wants(item):
                    yield "data", item
            if name == "end":
                yield "end", None
                return


@router.post(
    "/stream_events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"example": STREAM_EVENTS_EXAMPLE}},
            "description": "LangServe's astream_events protocol: metadata, data…, error?, end",
        },
        **TURN_ERRORS,
    },
)
async def stream_events(
    body: StreamEventsRequest, request: Request, docent: DocentDep, caller: QueryCaller
) -> EventSourceResponse:
    """One turn as LangChain stream events (`on_chain_start`, `on_retriever_end`, `on_chat_model_stream`…,
    `on_chain_end`), for LangServe's `RemoteRunnable.astream_events`."""
    checked = await checked_turn(body, request, docent, caller)
    return _sse(stream_events_of(body, turn_events(docent, body, checked)))
