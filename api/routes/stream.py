"""POST /stream: one turn as Server-Sent Events (metadata, sources, token..., [error], end)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import GraphDep, ServicesDep
from api.schemas import ErrorBody, InvokeRequest
from core.context import DocentContext
from core.vectorstore import CollectionError
from graph.turn import stream_turn

router = APIRouter(tags=["stream"])

# Proxies must pass each event on as it comes, and nobody may cache a live answer.
STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}


def turn_context(body: InvokeRequest) -> DocentContext:
    """The run-time knobs of an /invoke-shaped body."""
    knobs = body.config.configurable
    return DocentContext(k=knobs.k, collection=knobs.collection, retriever=knobs.retriever, model=knobs.model)


@router.post(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "metadata, sources, token…, error?, end"},
        400: {"model": ErrorBody},
        422: {"description": "Invalid body"},
    },
)
async def stream(body: InvokeRequest, graph: GraphDep, services: ServicesDep) -> EventSourceResponse:
    """Answer like /invoke, streaming tokens as they are generated. A client that disconnects cancels the
    turn, which is then not recorded.
    """
    services.answerers.get(body.config.configurable.model)  # an unknown model is a 400, before any event

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            async for name, data in stream_turn(
                graph,
                body.input.message,
                thread_id=body.config.configurable.thread_id,
                context=turn_context(body),
            ):
                yield ServerSentEvent(event=name, data=json.dumps(data))
        except CollectionError as exc:  # the 409 of /invoke, told in-band: the 200 is already sent
            yield ServerSentEvent(event="error", data=json.dumps({"detail": str(exc), "status": 409}))

    return EventSourceResponse(events(), headers=STREAM_HEADERS, ping=15)
