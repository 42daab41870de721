"""The FastAPI app factory; the lifespan opens models and stores once and closes them at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from langgraph.checkpoint.base import BaseCheckpointSaver

from api.routes import health, ingest, invoke, sources, stream, ws
from core.checkpoints import open_checkpointer
from core.providers import UnknownModelError
from core.services import Services, open_services
from core.settings import Settings, get_settings
from core.vectorstore import EmbeddingMismatchError
from graph.build import build_graph

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


def create_app(settings: Settings | None = None, *, resources: ResourceOpener = open_resources) -> FastAPI:
    """Build the app; nothing heavy happens until the lifespan opens `resources` (once per process)."""
    config = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with resources(config) as (services, checkpointer):
            app.state.services = services
            app.state.graph = build_graph(services, checkpointer)
            yield

    app = FastAPI(
        title="Docent",
        version=version("docent-rag"),
        description="Ask questions about your web pages and PDFs; answers cite their sources.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(invoke.router)
    app.include_router(stream.router)
    app.include_router(ws.router)
    app.include_router(ingest.router)
    app.include_router(sources.router)
    app.add_exception_handler(UnknownModelError, _client_error(400))
    app.add_exception_handler(EmbeddingMismatchError, _client_error(409))
    return app


def _client_error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler that answers with the exception's message and a 4xx status."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler
