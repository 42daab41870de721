"""The FastAPI app factory; the lifespan opens every resource once (through graph.build.open_docent) and
hands them to routes as one typed `AppResources` (api.deps)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import version

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from api.deps import AppResources
from api.docs import install_docs
from api.middleware.body_limit import BodyLimitMiddleware
from api.middleware.observability import install_observability
from api.openai_errors import OPENAI_PREFIX, install_openai_errors, openai_error
from api.probes import ProbeRunner
from api.routes import health, ingest, invoke, openai_compat, sources, stream, threads, workspaces, ws
from api.routes.ui import install_ui
from api.security.auth import require
from api.security.guardrail import Guardrail
from api.security.ratelimit import open_rate_limiter
from core.answering.providers import UnknownModelError
from core.retrieval.vector_store import CollectionError
from core.settings import Settings, get_settings
from core.storage.keys import open_keyring
from graph.build import Docent, open_docent
from graph.multitask import ThreadBusyError
from ingest.jobs import IngestJobs
from ingest.pipeline import Ingestor

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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keyring = open_keyring(config)
        limiter = open_rate_limiter(config)
        try:
            async with opener(config) as docent:
                services = docent.services
                # The ingest jobs' own threads: ingestion never runs on the default executor that the
                # request path's worker threads (asyncio.to_thread) share.
                ingest_jobs = IngestJobs.from_settings(config)
                # Set once, here; nothing writes app state after start-up. (Not Starlette's lifespan state:
                # `langgraph dev` runs a mounted app's lifespan itself and drops it.)
                app.state.docent = AppResources(
                        settings=config,
                        docent=docent,
                        keyring=keyring,
                        guardrail=Guardrail(config.blocked_patterns),
                        rate_limiter=limiter,
                        ingest_jobs=ingest_jobs,
                        ingestor=Ingestor(config, services.embedder, services.store),
                        probes=ProbeRunner(),
                )
                try:
                    yield
                finally:  # before the stores close under them
                    if stuck := await asyncio.to_thread(ingest_jobs.close):
                        log.warning("%d ingest jobs were still fetching at shutdown", stuck)
        finally:
            if limiter is not None:
                await limiter.aclose()

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
    if not mounted_in_studio:
        app.include_router(threads.router)
        install_ui(app)
    app.include_router(openai_compat.router)
    install_openai_errors(app)
    app.add_exception_handler(UnknownModelError, _client_error(400))
    app.add_exception_handler(CollectionError, _client_error(409))
    app.add_exception_handler(ThreadBusyError, _client_error(409))
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
    return app


def _client_error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler that answers with the exception's message and a 4xx status."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if request.url.path.startswith(OPENAI_PREFIX):
            return openai_error(status, str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler
