"""The FastAPI app factory; the lifespan opens every resource once (through graph.build.open_docent) and
hands them to routes as one typed `AppResources` (api.deps)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from importlib.metadata import version

import psycopg
import psycopg_pool
import redis.exceptions
import sqlalchemy.exc
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.routing import Route

from api.deps import AppResources
from api.docs import install_docs
from api.mcp import MCP_PATH, McpEndpoint
from api.middleware.body_limit import BodyLimitMiddleware
from api.middleware.observability import install_observability
from api.openai_errors import OPENAI_PREFIX, install_openai_errors, openai_error
from api.probes import ProbeRunner
from api.routes import health, ingest, invoke, me, openai_compat, sources, stream, threads, workspaces, ws
from api.routes.ui import install_ui
from api.security.auth import require
from api.security.guardrail import Guardrail
from api.security.ratelimit import open_rate_limiter
from core.answering.providers import UnknownModelError
from core.errors import DependencyUnavailable, unavailable
from core.retrieval.vector_store import CollectionError
from core.settings import Settings, get_settings
from core.storage.keys import KeyRing, KeyTable, open_keyring
from core.tracing import open_tracing
from graph.build import Docent, open_docent
from graph.multitask import ThreadBusyError
from ingest.pipeline import Ingestor
from ingest.queue import open_ingest_jobs

log = logging.getLogger("docent")

DocentOpener = Callable[[Settings], AbstractAsyncContextManager[Docent]]


def create_app(
    settings: Settings | None = None,
    *,
    opener: DocentOpener = open_docent,
    mounted_in_studio: bool = False,
) -> FastAPI:
    """Build the app; nothing heavy happens until the lifespan calls `opener` (once per process).
    `mounted_in_studio`: mounted by `langgraph dev`, whose own /threads and /metrics (which LangGraph Studio
    uses) must not be shadowed, so Docent's are left out there.
    """
    config = settings or get_settings()
    tracing = open_tracing()  # None unless OTEL_* variables ask for an exporter (docs/observability.md)

    mcp = McpEndpoint()  # its tools read the resources from the request's app, like every route

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The tracing exporters run for the app's lifetime; what they hold is flushed last, at exit.
        exporting = tracing.exporting() if tracing is not None else nullcontext()
        async with exporting, open_resources(config, opener) as resources:
            # Set once, here; nothing writes app state after start-up. (Not Starlette's lifespan state:
            # `langgraph dev` runs a mounted app's lifespan itself and drops it.)
            app.state.docent = resources
            async with mcp.run():  # the MCP endpoint's session managers, inside the resources' lifetime
                yield

    app = FastAPI(
        title="Docent",
        version=version("docent-rag"),
        description="Ask questions about your web pages and PDFs; answers cite their sources.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.include_router(health.router)
    app.include_router(invoke.router)
    app.include_router(stream.router)
    app.include_router(ws.router)
    app.include_router(ingest.router)
    app.include_router(sources.router)
    app.include_router(workspaces.router)
    app.include_router(me.router)
    if not mounted_in_studio:
        app.include_router(threads.router)
        install_ui(app)
    app.include_router(openai_compat.router)
    # An ASGI endpoint (McpEndpoint identifies the caller itself), at /mcp exactly: no slash redirect.
    app.router.routes.append(Route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False))
    install_openai_errors(app)
    app.add_exception_handler(UnknownModelError, _client_error(400))
    app.add_exception_handler(CollectionError, _client_error(409))
    app.add_exception_handler(ThreadBusyError, _client_error(409))
    for error in _UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _dependency_unavailable)
    app.add_middleware(
        BodyLimitMiddleware, limit=config.max_body_bytes, overrides={"/ingest": config.max_upload_bytes}
    )
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "Content-Disposition"],
            max_age=600,
        )
    # Last: its middleware must be the outermost, so refusals by auth, limits and CORS carry a request id.
    install_observability(
        app, config, metrics_auth=[Depends(require("admin"))], metrics_route=not mounted_in_studio
    )
    if tracing is not None:  # outside even that middleware: its request id goes on the server span
        tracing.instrument_app(app)
    return app


@asynccontextmanager
async def open_resources(
    config: Settings, opener: DocentOpener = open_docent, *, keys: bool = True
) -> AsyncIterator[AppResources]:
    """Everything one process serves with, opened once and closed on exit: the server's lifespan and `docent
    mcp` (stdio, `keys=False`: its one local user needs no API key) both open them here."""
    limiter = open_rate_limiter(config) if keys else None
    try:
        async with opener(config) as docent:
            services = docent.services
            keyring = (
                await asyncio.to_thread(open_keyring, config, KeyTable(services.database)) if keys else None
            )
            # The ingest jobs' own threads (ingestion never runs on the default executor that the
            # request path's worker threads share), or in server mode the workers' queue; their state is
            # in the database, readable from every replica.
            ingestor = Ingestor(config, services.embedder, services.store)
            database = await asyncio.to_thread(lambda: services.database)
            ingest_jobs = await open_ingest_jobs(config, database, ingestor)
            resources = AppResources(
                settings=config,
                docent=docent,
                keyring=keyring,
                guardrail=Guardrail(config.blocked_patterns),
                rate_limiter=limiter,
                ingest_jobs=ingest_jobs,
                ingestor=ingestor,
                probes=ProbeRunner(),
            )
            refresher = asyncio.create_task(_refresh_keys(keyring)) if keyring is not None else None
            try:
                yield resources
            finally:  # before the stores close under them
                if refresher is not None:
                    refresher.cancel()
                if stuck := await ingest_jobs.aclose():
                    log.warning("%d ingest jobs were still fetching at shutdown", stuck)
    finally:
        if limiter is not None:
            await limiter.aclose()


async def _refresh_keys(keyring: KeyRing) -> None:
    """Re-read the database's API keys every `recheck_s`, off the event loop, for the app's lifetime: a key
    created or revoked on any replica takes effect here within that time. A database that cannot be read
    leaves the keys read before in use."""
    failing = False
    while True:
        await asyncio.sleep(keyring.recheck_s)
        try:
            await asyncio.to_thread(keyring.refresh_table)
        except Exception as exc:  # the database is down: keep serving the keys read before, say so once
            if not failing:
                log.warning("API keys not re-read from the database (until it answers again): %s", exc)
            failing = True
        else:
            if failing:
                log.info("API keys are re-read from the database again")
            failing = False


_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    DependencyUnavailable,
    sqlalchemy.exc.DBAPIError,
    sqlalchemy.exc.TimeoutError,
    psycopg.Error,
    psycopg_pool.PoolTimeout,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
"""What may mean that a dependency is unreachable: ours, and the database and Redis drivers' errors
(`core.errors.unavailable` tells which do); the vector store raises Chroma's as DependencyUnavailable."""

RETRY_AFTER_S = 5


async def _dependency_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 naming the dependency that cannot be reached (a driver error that means anything else is a 500)."""
    if (down := unavailable(exc)) is None:
        raise exc
    log.warning("%s %s: %s unavailable: %s", request.method, request.url.path, down.dependency, down)
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    message = f"{down.dependency} is unavailable, retry later: {down}"
    if request.url.path.startswith(OPENAI_PREFIX):
        return openai_error(503, message, headers)
    return JSONResponse({"detail": message, "dependency": down.dependency}, status_code=503, headers=headers)


def _client_error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler that answers with the exception's message and a 4xx status."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if request.url.path.startswith(OPENAI_PREFIX):
            return openai_error(status, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler
