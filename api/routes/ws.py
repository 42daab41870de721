"""WebSocket /ws: the /stream events as JSON frames, any number of questions per connection, one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from api.routes.stream import turn_events
from api.schemas import InvokeRequest
from core.providers import UnknownModelError
from core.services import Services
from graph.build import DocentGraph

router = APIRouter(tags=["stream"])


@router.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    """Each text frame is an /invoke body; the reply is `{"event": ..., "data": ...}` frames ending with `end`
    (or `error` for a bad request). Closing the socket cancels the turn in flight, which is then not recorded.
    """
    graph = cast(DocentGraph, websocket.app.state.graph)
    services = cast(Services, websocket.app.state.services)
    await websocket.accept()
    inbox: asyncio.Queue[str | None] = asyncio.Queue()

    async def receive() -> None:
        try:
            while True:
                inbox.put_nowait(await websocket.receive_text())
        except WebSocketDisconnect:
            inbox.put_nowait(None)

    async def answer(text: str) -> None:
        try:
            body = InvokeRequest.model_validate_json(text)
            services.answerers.get(body.config.configurable.model)
        except ValidationError as exc:
            await websocket.send_json(
                {"event": "error", "data": {"detail": json.loads(exc.json(include_url=False)), "status": 422}}
            )
            return
        except UnknownModelError as exc:
            await websocket.send_json({"event": "error", "data": {"detail": str(exc), "status": 400}})
            return
        async for name, data in turn_events(graph, body):
            await websocket.send_json({"event": name, "data": data})

    receiver = asyncio.create_task(receive())
    try:
        while (text := await inbox.get()) is not None:
            turn = asyncio.create_task(answer(text))
            await asyncio.wait({turn, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if not turn.done():  # the client went away mid-answer
                turn.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await turn
                break
            turn.result()
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
