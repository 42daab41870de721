"""POST /stream: one turn as Server-Sent Events (metadata, sources, token..., [error], end)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import DocentDep
from api.routes import docent_router
from api.schemas import TURN_ERRORS, InvokeRequest
from api.security.auth import QueryCaller
from api.security.limits import check_question
from api.security.ownership import thread_for_turn
from api.security.workspaces import turn_context
from core.errors import unavailable
from core.retrieval.vector_store import CollectionError
from core.types import DocentContext
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
"degraded": false, "degraded_reason": null, "unsupported_sentences": 0, \
"run_id": "3a303ca7-6b98-4ec9-bfc1-0206e5e7d382", \
"timings": {"retrieve_ms": 14.7, "first_token_ms": 21.1, "total_ms": 29.6}}

"""


async def turn_events(
    docent: Docent, body: InvokeRequest, thread_id: str, context: DocentContext
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The events of one turn on a thread the caller owns, shared by /stream and /ws. A collection error or a
    busy thread, which /invoke answers with a 409, and a dependency outage (/invoke's 503) become an in-band
    `error` event: the stream has begun.
    """
    try:
        async for name, data in stream_turn(
            docent.graph,
            body.input.message,
            thread_id=thread_id,
            context=context,
            gate=docent.turns,
        ):
            yield name, data
    except (CollectionError, ThreadBusyError) as exc:
        yield "error", {"detail": str(exc), "status": 409}
    except Exception as exc:  # a store, Redis or the database went away mid-turn: 503, as /invoke says
        if (down := unavailable(exc)) is None:
            raise
        yield "error", {"detail": f"{down.dependency} is unavailable: {down}", "status": 503}


@router.post(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"example": STREAM_EXAMPLE}},
            "description": "metadata, sources, token…, error?, end",
        },
        **TURN_ERRORS,
    },
)
async def stream(
    body: InvokeRequest, request: Request, docent: DocentDep, caller: QueryCaller
) -> EventSourceResponse:
    """Answer like /invoke, streaming tokens as they are generated. A client that disconnects cancels the
    turn, which is then not recorded.
    """
    knobs, services = body.config.configurable, docent.services
    services.answerers.get(knobs.model)  # an unknown model is a 400, before any event
    check_question(request, body.input.message, knobs)
    context = await turn_context(services, caller, body.run_context())
    thread = await thread_for_turn(services.records, caller, knobs.thread_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for name, data in turn_events(docent, body, thread, context):
            yield ServerSentEvent(event=name, data=json.dumps(data))

    return EventSourceResponse(events(), headers=STREAM_HEADERS, ping=15)
