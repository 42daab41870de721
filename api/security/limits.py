"""Checks every question passes before it reaches the graph: length, k, and the input guardrail."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.requests import HTTPConnection

from api.deps import get_resources
from api.schemas import Configurable
from core.metrics import BLOCKED


def check_question(connection: HTTPConnection, message: str, knobs: Configurable | None = None) -> None:
    """422 for a question or k over the server's limits; 400 when the guardrail blocks the question."""
    resources = get_resources(connection)
    settings = resources.settings
    if len(message) > settings.max_message_chars:
        raise HTTPException(
            422,
            f"message is {len(message)} characters; this server takes at most {settings.max_message_chars}",
        )
    if knobs is not None and knobs.k is not None and knobs.k > settings.max_k:
        raise HTTPException(422, f"k is {knobs.k}; this server retrieves at most {settings.max_k} passages")
    pattern = resources.guardrail.blocked_by(message)
    if pattern is not None:
        BLOCKED.labels(pattern=pattern).inc()
        raise HTTPException(400, f"blocked by the input guardrail: the message matches {pattern!r}")
