"""A cap on request body size, enforced while the body streams in (Content-Length is not trusted)."""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.openai_errors import OPENAI_PREFIX, openai_error_body


class BodyTooLarge(HTTPException):
    """The body passed its limit: an HTTPException, so FastAPI's body parsing passes it on as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _detail(limit))


class BodyLimitMiddleware:
    """413 for bodies over `limit` bytes; paths under an entry of `overrides` get that entry's limit."""

    def __init__(self, app: ASGIApp, *, limit: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.overrides = overrides or {}

    def _limit_for(self, path: str) -> int:
        for prefix, limit in self.overrides.items():
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit, scope["path"])
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, limit, scope["path"])


def _detail(limit: int) -> str:
    return f"request body too large: the limit is {limit} bytes"


async def _refuse(send: Send, limit: int, path: str) -> None:
    """A 413 in the shape of the route's errors (OpenAI's under /v1)."""
    if path.startswith(OPENAI_PREFIX):
        body = json.dumps(openai_error_body(413, _detail(limit))).encode()
    else:
        body = json.dumps({"detail": _detail(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
