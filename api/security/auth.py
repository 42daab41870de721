"""Who is calling: API keys from `Authorization: Bearer` or `X-API-Key`, scope checks, and the per-key rate
limit, as FastAPI dependencies. With `DOCENT_AUTH=off` every caller is one anonymous tenant.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from api.deps import get_resources
from core.metrics import RATE_LIMITED
from core.storage.keys import ANONYMOUS, Principal, Scope

UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="docent"'}
# Declared so OpenAPI (and /docs' Authorize button) shows how to send a key; `identify` reads the headers.
BEARER = HTTPBearer(
    auto_error=False, description="`Authorization: Bearer <key>` (or the key alone in an `X-API-Key` header)."
)


def presented_key(connection: HTTPConnection) -> str | None:
    """The key sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`, if any."""
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.headers.get("x-api-key", "").strip() or None


async def identify(
    connection: HTTPConnection,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> Principal:
    """The caller (401 without a valid key), charged one request against its rate limit (429 when spent)."""
    resources = get_resources(connection)
    if resources.keyring is None:
        principal = ANONYMOUS
    else:
        key = presented_key(connection)
        if key is None:
            raise HTTPException(
                401, "missing API key: send `Authorization: Bearer <key>` or `X-API-Key`", UNAUTHORIZED
            )
        found = resources.keyring.identify(key)
        if found is None:
            raise HTTPException(401, "unknown API key", UNAUTHORIZED)
        principal = found
    await charge(connection, principal, 1)
    return principal


async def charge(connection: HTTPConnection, principal: Principal, cost: int) -> None:
    """Take `cost` requests from the caller's bucket; 429 with Retry-After when it is empty."""
    limiter = get_resources(connection).rate_limiter
    if limiter is None or cost <= 0:
        return
    wait = await limiter.acquire(principal.name, cost)
    if wait is not None:
        RATE_LIMITED.labels(key=principal.name).inc()
        seconds = max(1, math.ceil(wait))
        raise HTTPException(429, f"rate limit exceeded: retry in {seconds} s", {"Retry-After": str(seconds)})


def require(scope: Scope) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """A dependency: the caller, who must hold `scope` (403 otherwise)."""

    async def dependency(principal: Annotated[Principal, Depends(identify)]) -> Principal:
        if not principal.allows(scope):
            raise HTTPException(403, f"this key lacks the `{scope}` scope")
        return principal

    dependency.__name__ = f"require_{scope}"
    return cast(Callable[[HTTPConnection], Awaitable[Principal]], dependency)


QueryCaller = Annotated[Principal, Depends(require("query"))]
IngestCaller = Annotated[Principal, Depends(require("ingest"))]
AdminCaller = Annotated[Principal, Depends(require("admin"))]
