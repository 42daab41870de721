"""The chat page: `GET /` serves api/static/index.html, and `/static` its script and stylesheet.

Plain HTML, CSS and an ES module: there is no build step. The page is public; every API call it makes
carries the user's key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.routes import docent_router

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Only this origin's own script, style and API; no inline script; never framed (clickjacking).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = docent_router(tags=["ui"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The chat page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def install_ui(app: FastAPI) -> None:
    """Serve the chat page at `/` and its files under `/static`."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
