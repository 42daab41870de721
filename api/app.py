"""The FastAPI app factory; the lifespan opens models and stores once and closes them at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.routes import health, invoke
from core.checkpoints import open_checkpointer
from core.providers import UnknownModelError
from core.services import open_services
from core.settings import Settings, get_settings
from core.vectorstore import EmbeddingMismatchError
from graph.build import build_graph


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing heavy happens until the lifespan starts."""
    config = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await asyncio.to_thread(open_services, config)
        try:
            async with open_checkpointer(config) as checkpointer:
                app.state.services = services
                app.state.graph = build_graph(services, checkpointer)
                yield
        finally:
            services.close()

    app = FastAPI(
        title="Docent",
        version=version("docent-rag"),
        description="Ask questions about your web pages and PDFs; answers cite their sources.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(invoke.router)
    app.add_exception_handler(UnknownModelError, _client_error(400))
    app.add_exception_handler(EmbeddingMismatchError, _client_error(409))
    return app


def _client_error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """An exception handler that answers with the exception's message and a 4xx status."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return handler
