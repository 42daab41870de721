"""WebSocket /ws: the /stream events as JSON frames, any number of questions per connection, one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.deps import get_resources
from api.routes import docent_router
from api.routes.stream import checked_turn, turn_events
from api.schemas import InvokeRequest
from api.security.auth import charge, identify
from core.answering.providers import UnknownModelError
from core.errors import unavailable
from core.storage.keys import Principal

router = docent_router(tags=["stream"])


async def _admit(websocket: WebSocket) -> Principal | None:
    """The caller, who needs the `query` scope; a refused handshake gets the JSON error as its HTTP answer
    where the server supports that, else a policy-violation close.
    """
    try:
        principal = await identify(websocket)
        if not principal.allows("query"):
            raise HTTPException(403, "this key lacks the `query` scope")
        return principal
    except HTTPException as exc:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(
                JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
            )
        else:
            await websocket.close(code=1008, reason=str(exc.detail)[:120])
        return None


@router.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    """Each text frame is an /invoke body; the reply is `{"event": ..., "data": ...}` frames ending with `end`
    (or `error` for a refused request, with its HTTP status). Send the key as on HTTP routes. Closing the
    socket cancels the turn in flight, which is then not recorded.
    """
    docent = get_resources(websocket).docent
    services = docent.services
    caller = await _admit(websocket)
    if caller is None:
        return
    await websocket.accept()
    inbox: asyncio.Queue[str | None] = asyncio.Queue()

    async def receive() -> None:
        try:
            while True:
                inbox.put_nowait(await websocket.receive_text())
        except WebSocketDisconnect:
            inbox.put_nowait(None)

    async def refuse(status: int, detail: object) -> None:
        await websocket.send_json({"event": "error", "data": {"detail": detail, "status": status}})

    async def answer(text: str) -> None:
        try:
            body = InvokeRequest.model_validate_json(text)
            services.answerers.get(body.config.configurable.model)
            await charge(websocket, caller, 1)
            checked = await checked_turn(body, websocket, docent, caller)
        except ValidationError as exc:
            await refuse(422, json.loads(exc.json(include_url=False)))
            return
        except UnknownModelError as exc:
            await refuse(400, str(exc))
            return
        except HTTPException as exc:
            await refuse(exc.status_code, exc.detail)
            return
        except Exception as exc:
            if (down := unavailable(exc)) is None:
                raise
            await refuse(503, f"{down.dependency} is unavailable: {down}")
            return
        async for name, data in turn_events(docent, body, checked):
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
