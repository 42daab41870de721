"""The `Idempotency-Key` header of POST /invoke, /v1/chat/completions and /ingest: a client's retry after a
lost response gets the first response back (on any replica) instead of a second turn or job.

Per owner (key id and workspace) and route: the same key with the same body replays the first status and
body (with `Idempotent-Replayed: true`); with another body it is a 409. A retry while the first request still
runs waits for its answer, at most DOCENT_TURN_WAIT_S, then gets a 409 with Retry-After. Only answers are
kept: a request that failed (an error status) left nothing behind, so its retry runs afresh. Answers are
replayed for DOCENT_IDEMPOTENCY_TTL_S. Storage: core/storage/idempotency.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import anyio
from fastapi import Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import get_resources
from core.storage.idempotency import HEARTBEAT_S, IdempotencyStore
from core.storage.keys import Principal

log = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
WAIT_POLL_S = 0.1
"""How often a retry waiting for the first request asks whether it has answered."""

KEY_PATTERN = r"^[!-~]{1,255}$"
"""1 to 255 visible ASCII characters (a UUID, say)."""
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=KEY_PATTERN,
        examples=["5f0c6a1e-93b4-4d8e-9a57-2f1c0d7e4b21"],
        description="Any unique string of visible ASCII (a UUID): a retry with the same key and body returns"
        " the first response instead of running again (kept DOCENT_IDEMPOTENCY_TTL_S, 24 h by default).",
    ),
]
OpenAIIdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", pattern=KEY_PATTERN, include_in_schema=False)
]
"""The same header on /v1, left out of the schema: /v1 documents OpenAI's request shape, which has none."""


def request_hash(body: BaseModel) -> str:
    """The body's fingerprint: its validated fields, so that formatting differences do not count."""
    return hashlib.sha256(body.model_dump_json(by_alias=True).encode()).hexdigest()


def _stored(result: BaseModel | Response, status_code: int) -> Response:
    if isinstance(result, Response):
        return result
    return JSONResponse(result.model_dump(mode="json", by_alias=True), status_code=status_code)


async def run_once(
    request: Request,
    caller: Principal,
    key: str,
    body: BaseModel,
    run: Callable[[str], Awaitable[BaseModel | Response]],
    *,
    recover: Callable[[str], Awaitable[BaseModel | None]] | None = None,
    status_code: int = 200,
) -> Response:
    """Run `run(run_id)` once for (caller, route, key), or replay what the first run answered.

    The run id is the claim's: after a replica died holding the claim, its successor gets the same id and
    `recover(run_id)` first looks for what the dead run finished (a stored turn) before its answer could be
    kept; that answer is then the key's, so a retry never runs the work twice. `status_code`: the route's
    success status."""
    resources = get_resources(request)
    store = IdempotencyStore(resources.docent.services.database, resources.settings.idempotency_ttl_s)
    owner, route, digest = f"{caller.id}@{caller.workspace}", request.url.path, request_hash(body)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + resources.settings.turn_wait_s
    while (claim := await asyncio.to_thread(store.claim, owner, route, key, digest)).state != "claimed":
        if claim.state == "mismatch":
            raise HTTPException(
                409, "Idempotency-Key: this key was used with a different request body; use a new key"
            )
        if claim.state == "done":
            assert claim.status_code is not None and claim.response is not None
            return Response(
                claim.response,
                status_code=claim.status_code,
                media_type="application/json",
                headers={REPLAYED_HEADER: "true"},
            )
        if loop.time() >= deadline:
            raise HTTPException(
                409,
                "Idempotency-Key: a request with this key is still running; retry later",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(WAIT_POLL_S)

    run_id = claim.run_id or ""
    # A failed request is forgotten, unless it retried a dead process's run: that run's claim is kept for the
    # next retry, which takes it over at once with the same run id.
    give_back = store.abandon if claim.taken_over else store.release
    heartbeat = asyncio.create_task(_keep_claim(store, owner, route, key))
    try:
        found = await recover(run_id) if recover is not None and claim.taken_over else None
        response = _stored(found if found is not None else await run(run_id), status_code)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _stop(heartbeat)
            await asyncio.to_thread(give_back, owner, route, key)
        raise
    with anyio.CancelScope(shield=True):  # once answered, the answer is kept whatever happens to the caller
        await _stop(heartbeat)
        if response.status_code < 400:
            await asyncio.to_thread(
                store.finish, owner, route, key, response.status_code, bytes(response.body).decode()
            )
        else:
            await asyncio.to_thread(give_back, owner, route, key)
    return response


async def _keep_claim(store: IdempotencyStore, owner: str, route: str, key: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await asyncio.to_thread(store.heartbeat, owner, route, key)
        except Exception as exc:  # the next beat may get through; the claim goes stale only after several
            log.warning("idempotency key %r of %s: cannot renew its claim (%s)", key, route, exc)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])
