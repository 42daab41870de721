"""One router module per resource; each is a `docent_router`, whose JSON bodies must be valid Unicode."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.routing import APIRoute

LONE_SURROGATE = "a lone UTF-16 surrogate (\\ud800-\\udfff) is not text: send valid Unicode"


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


class UnicodeJSONRequest(Request):
    """A request whose JSON body is refused (422) when a string in it holds a lone surrogate: JSON's `\\ud800`
    escape parses, but such a string cannot be stored, logged or sent back as UTF-8."""

    async def json(self) -> Any:
        """The parsed body, checked."""
        if not hasattr(self, "_json"):
            body = await self.body()
            parsed = json.loads(body)
            if _has_lone_surrogate(parsed):
                raise HTTPException(422, f"body: {LONE_SURROGATE}")
            self._json = parsed
        return self._json


class UnicodeJSONRoute(APIRoute):
    """A route that reads its JSON body through UnicodeJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The default handler, given the checked request."""
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            return await handler(UnicodeJSONRequest(request.scope, request.receive))

        return checked


def docent_router(**options: Any) -> APIRouter:
    """An APIRouter whose routes refuse JSON bodies that are not valid Unicode."""
    return APIRouter(route_class=UnicodeJSONRoute, **options)
