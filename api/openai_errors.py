"""Errors under /v1 in OpenAI's shape (`{"error": {"message", "type", "code", "param"}}`), so OpenAI clients
show them; every other route keeps FastAPI's `{"detail": ...}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

OPENAI_PREFIX = "/v1/"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error object for an HTTP status."""
    kind = ERROR_TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "code": status, "param": None}}


def openai_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An OpenAI-style error reply."""
    return JSONResponse(openai_error_body(status, message), status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith(OPENAI_PREFIX):
        return openai_error(exc.status_code, str(exc.detail), exc.headers)
    return await http_exception_handler(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if request.url.path.startswith(OPENAI_PREFIX):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return openai_error(422, f"{where}: {first.get('msg', 'invalid request')}")
    return await request_validation_exception_handler(request, exc)


def install_openai_errors(app: FastAPI) -> None:
    """Route HTTP and validation errors of /v1 paths through OpenAI's error shape."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
