"""The FastAPI app factory; the lifespan opens models and stores once and closes them at shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import version

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from langgraph.checkpoint.base import BaseCheckpointSaver

from api.auth import require
from api.body_limit import BodyLimitMiddleware
from api.observability import install_observability
from api.openai_errors import OPENAI_PREFIX, install_openai_errors, openai_error
from api.routes import health, ingest, invoke, openai_compat, sources, stream, threads, ws
from api.routes.ui import install_ui
from core.checkpoints import open_checkpointer
from core.guardrail import Guardrail
from core.keys import KeyRing
from core.providers import UnknownModelError
from core.ratelimit import open_rate_limiter
from core.services import Services, open_services
from core.settings import Settings, get_settings
from core.vectorstore import CollectionError
from graph.build import build_graph

log = logging.getLogger("docent")


class NoKeysError(RuntimeError):
    """Auth is on and no API key is configured: the server would refuse every request."""


def open_keyring(settings: Settings) -> KeyRing | None:
    """The API keys (None with auth off, after a warning); NoKeysError when auth is on without any key."""
    if settings.auth == "off":
        log.warning("DOCENT_AUTH=off: every route is open to anyone who can reach this server")
        return None
    keyring = KeyRing(settings.api_keys, settings.keys_file)
    if not len(keyring):
        raise NoKeysError(
            f"no API key is configured (keys file {settings.keys_file}): create one with"
            " `docent keys create NAME --scopes query,ingest`, or set DOCENT_AUTH=off to serve without keys"
        )
    return keyring


Resources = tuple[Services, BaseCheckpointSaver[str]]
ResourceOpener = Callable[[Settings], AbstractAsyncContextManager[Resources]]


@asynccontextmanager
async def open_resources(settings: Settings) -> AsyncIterator[Resources]:
    """Open the services (in a worker thread: ONNX and Chroma block) and the checkpointer."""
    services = await asyncio.to_thread(open_services, settings)
    try:
        async with open_checkpointer(settings) as checkpointer:
            yield services, checkpointer
    finally:
        services.close()


def create_app(
    settings: Settings | None = None,
    *,
    resources: ResourceOpener = open_resources,
    under_langgraph: bool = False,
) -> FastAPI:
    """Build the app; nothing heavy happens until the lifespan opens `resources` (once per process).
    `under_langgraph`: mounted by `langgraph dev`, whose own /threads and /metrics (which LangGraph Studio
    uses) must not be shadowed, so Docent's are left out there.
    """
    config = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.keyring = open_keyring(config)
        app.state.guardrail = Guardrail(config.blocked_patterns)
        limiter = open_rate_limiter(config)
        app.state.rate_limiter = limiter
        try:
            async with resources(config) as (services, checkpointer):
                app.state.services = services
                app.state.graph = build_graph(services, checkpointer)
                yield
        finally:
            if limiter is not None:
                await limiter.aclose()

    app = FastAPI(
        title="Docent",
        version=version("docent-rag"),
        description="Ask questions about your web pages and PDFs; answers cite their sources.",
        lifespan=lifespan,
    )
    app.state.settings = config
    app.include_router(health.router)
    app.include_router(invoke.router)
    app.include_router(stream.router)
    app.include_router(ws.router)
    app.include_router(ingest.router)
    app.include_router(sources.router)
    if not under_langgraph:
        app.include_router(threads.router)
        install_ui(app)
    app.include_router(openai_compat.router)
    install_openai_errors(app)
    app.add_exception_handler(UnknownModelError, _client_error(400))
    app.add_exception_handler(CollectionError, _client_error(409))
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
        app, config, metrics_auth=[Depends(require("admin"))], metrics_route=not under_langgraph
    )
    return app


def _client_error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler that answers with the exception's message and a 4xx status."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if request.url.path.startswith(OPENAI_PREFIX):
            return openai_error(status, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler
