"""POST /stream: one turn as Server-Sent Events (metadata, sources, token..., [error], end)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import GraphDep, ServicesDep
from api.schemas import ErrorBody, InvokeRequest
from core.vectorstore import CollectionError
from graph.build import DocentGraph
from graph.turn import stream_turn

router = APIRouter(tags=["stream"])

# Proxies must pass each event on as it comes, and nobody may cache a live answer.
STREAM_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}


async def turn_events(graph: DocentGraph, body: InvokeRequest) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The events of one turn, shared by /stream and /ws. A collection error, which /invoke answers with a
    409, becomes an in-band `error` event: the stream has already begun.
    """
    try:
        async for name, data in stream_turn(
            graph,
            body.input.message,
            thread_id=body.config.configurable.thread_id,
            context=body.run_context(),
        ):
            yield name, data
    except CollectionError as exc:
        yield "error", {"detail": str(exc), "status": 409}


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
        async for name, data in turn_events(graph, body):
            yield ServerSentEvent(event=name, data=json.dumps(data))

    return EventSourceResponse(events(), headers=STREAM_HEADERS, ping=15)
