"""GET /health: the process is up and what it serves. GET /ready: its stores and model answer right now."""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Literal

import httpx
import redis.asyncio as aioredis
from fastapi.responses import JSONResponse
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel, ConfigDict

from api.deps import ResourcesDep, ServicesDep
from api.probes import CHECK_TIMEOUT_S, Probe
from api.routes import docent_router
from api.schemas import Health
from core.answering.providers import model_probe, provider_of
from core.services import Services
from core.settings import Settings

router = docent_router(tags=["health"])

# A thread id no request can use (thread ids are validated), read by the checkpointer check.
_PROBE_THREAD = "__docent_ready__"


class Readiness(BaseModel):
    """Body of GET /ready: `ok` or the reason for each check."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": {"records": "ok", "chroma": "ok", "checkpointer": "ok", "model": "ok"},
                },
                {
                    "status": "not ready",
                    "checks": {
                        "records": "ok",
                        "chroma": "ok",
                        "checkpointer": "ok",
                        "model": "unreachable: All connection attempts failed",
                    },
                },
            ]
        }
    )

    status: Literal["ready", "not ready"]
    checks: dict[str, str]


@router.get("/health", response_model=Health)
async def health(services: ServicesDep) -> Health:
    """Liveness: answers as soon as the stores and models are open."""
    return Health(
        status="ok",
        version=version("docent-rag"),
        models=services.answerers.names,
        collection=services.settings.collection,
    )


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A check failed; its entry says why."}},
)
async def ready(resources: ResourcesDep) -> JSONResponse:
    """Readiness: 200 when the relational database (`records`), Chroma, the checkpointer and Redis (when
    used: server mode or the Redis rate limiter) answer and the default model's server is reachable
    (in-process models always are); else 503 naming the failed checks. Each check has 2 s.
    """
    services, checkpointer = resources.docent.services, resources.docent.checkpointer
    probes: dict[str, Probe] = {
        "records": lambda: asyncio.to_thread(_records, services),
        "chroma": lambda: asyncio.to_thread(_chroma, services),
        "checkpointer": lambda: _checkpointer(checkpointer),
        "model": lambda: _model(services),
    }
    if _uses_redis(services.settings):
        probes["redis"] = lambda: _redis(services.settings)
    results = await asyncio.gather(*(resources.probes.run(name, probe) for name, probe in probes.items()))
    checks = dict(zip(probes, results, strict=True))
    ok = all(result == "ok" for result in checks.values())
    body = Readiness(status="ready" if ok else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def _records(services: Services) -> None:
    # `SELECT 1` on the process's one engine: records, keys, sources and jobs all live behind it.
    with services.database.connect() as connection:
        connection.exec_driver_sql("SELECT 1").all()


def _chroma(services: Services) -> None:
    # Reads the default collection's record (creates nothing); raises when Chroma cannot be read.
    services.store.vectors.stored_model(services.settings.collection)


def _uses_redis(settings: Settings) -> bool:
    """Redis holds the turn locks in server mode, and the rate limiter's buckets when it is the backend."""
    return settings.server_mode or settings.rate_limit_backend == "redis"


async def _redis(settings: Settings) -> None:
    client = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _checkpointer(saver: BaseCheckpointSaver[str]) -> None:
    await saver.aget_tuple({"configurable": {"thread_id": _PROBE_THREAD}})


async def _model(services: Services) -> str | None:
    probe = model_probe(services.settings, provider_of(services.answerers.default))
    if probe is None:
        return None
    try:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as client:
            reply = await client.get(probe.url, headers=probe.headers)
    except httpx.HTTPError as exc:
        return f"unreachable: {exc or type(exc).__name__}"
    return None if reply.status_code == 200 else f"model server answered HTTP {reply.status_code}"
