"""Request ids, HTTP metrics and access log lines, in one pure ASGI middleware (streams pass unbuffered)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from fastapi import Depends, FastAPI
from fastapi.params import Depends as DependsParam
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware.request_id import HEADER, request_id_from
from api.routes import metrics
from api.schemas import AUTH_ERRORS
from core.log_config import REQUEST_ID
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from core.settings import Settings
from core.tracing import REQUEST_ID_ATTRIBUTE, annotate_current

UNMATCHED = "<unmatched>"
access_log = logging.getLogger("docent.access")
error_log = logging.getLogger("docent.error")


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (`/threads/{thread_id}`), never the raw
    path, so metric labels stay few; `<unmatched>` when no route matched.
    """
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class ObservabilityMiddleware:
    """Per HTTP request: a request id (the client's sane X-Request-ID, else a new one) held in a contextvar
    for log lines and echoed on the response; the request count and latency by route template; one
    `docent.access` log line. WebSockets get the id (contextvar and handshake header) only.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch by scope type; lifespan passes straight through."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_from(scope["headers"])
        token = REQUEST_ID.set(request_id)
        annotate_current({REQUEST_ID_ATTRIBUTE: request_id})  # the request's server span, when tracing
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unhandled error", extra={"method": scope["method"], "path": scope["path"]})
            if status is not None:
                raise  # the response has begun: the server can only cut the connection
            await _internal_error(send_with_id, request_id)
        finally:
            self._record(scope, status if status is not None else 500, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        route, method = route_template(scope), scope["method"]
        HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
        HTTP_LATENCY.labels(route=route, method=method).observe(seconds)
        duration_ms = round(seconds * 1000, 1)
        access_log.info(
            "%s %s %d %.1fms",
            method,
            scope["path"],
            status,
            duration_ms,
            extra={
                "method": method,
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
            },
        )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_from(scope["headers"])
        token = REQUEST_ID.set(request_id)
        annotate_current({REQUEST_ID_ATTRIBUTE: request_id})

        async def send_with_id(message: Message) -> None:
            if message["type"] == "websocket.accept":
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


async def _internal_error(send: Send, request_id: str) -> None:
    """A JSON 500 for an exception no handler took, so that even it carries the request id."""
    body = json.dumps({"detail": "Internal Server Error", "request_id": request_id}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_observability(
    app: FastAPI,
    settings: Settings,
    *,
    metrics_auth: Sequence[DependsParam] | None = None,
    metrics_route: bool = True,
) -> None:
    """Add the middleware and GET /metrics (GET /ready is in the health router). Call it after every other
    `add_middleware`, so this middleware is the outermost: refusals by auth, limits and CORS then carry a
    request id and are counted too. /metrics is public with DOCENT_METRICS_PUBLIC=true, else guarded by
    `metrics_auth` (meant: `[Depends(require("admin"))]`); with neither it refuses every request.
    `metrics_route=False` leaves /metrics to a host app (LangGraph's API under `langgraph dev`).
    """
    app.add_middleware(ObservabilityMiddleware)
    if not metrics_route:
        return
    if settings.metrics_public:
        guard: list[DependsParam] = []
    else:
        guard = list(metrics_auth) if metrics_auth is not None else [Depends(metrics.no_admin_auth)]
    app.include_router(metrics.router, dependencies=guard, responses=AUTH_ERRORS if guard else None)
