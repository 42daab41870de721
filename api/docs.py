"""Interactive API docs (/docs: Swagger UI, /redoc) served from assets inside the fastapi-offline wheel, so
they work on an offline install (FastAPI's defaults load them from a CDN)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"


def install_docs(app: FastAPI) -> None:
    """Mount the assets and the two docs pages; the app must be created with docs_url=None, redoc_url=None."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    title = f"{app.title} — API"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        assets = f"{root}{ASSETS_URL}"
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        assets = f"{root}{ASSETS_URL}"
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
