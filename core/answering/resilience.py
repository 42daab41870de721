"""Which model failures are worth retrying, and how long to wait: exponential backoff with jitter,
honouring a server's Retry-After.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx
import openai

TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ModelTimeoutError(TimeoutError):
    """A model sent nothing for longer than the timeout (before the first token, or between tokens)."""


class StreamInterruptedError(RuntimeError):
    """A model failed after it had streamed part of its answer; retrying would repeat what was sent."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"stream interrupted: {describe(cause)}")
        self.cause = cause


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries per provider: `max_retries` after the first try, waits doubling from `backoff_s`."""

    max_retries: int = 2
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0

    def delay(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based); None: do not retry this error."""
        if attempt >= self.max_retries or not is_transient(error):
            return None
        wanted = retry_after(error)
        if wanted is not None:
            # A server asking for longer than we are willing to wait is better served by the next fallback.
            return wanted if wanted <= self.backoff_max_s else None
        ceiling = min(self.backoff_max_s, self.backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


def status_of(error: BaseException) -> int | None:
    """The HTTP status behind a client library's error, when there is one."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code
    status = getattr(error, "status_code", None)  # ollama.ResponseError
    return status if isinstance(status, int) and status > 0 else None


def is_transient(error: BaseException) -> bool:
    """Refused or reset connections, timeouts, 429 and 5xx: worth another try."""
    if isinstance(error, (TimeoutError, ConnectionError, httpx.TransportError, openai.APIConnectionError)):
        return True
    status = status_of(error)
    return status is not None and status in TRANSIENT_STATUS


def retry_after(error: BaseException) -> float | None:
    """The server's Retry-After (seconds form), when the error carries a response that has one."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def describe(error: BaseException) -> str:
    """A short, user-readable reason: the status when there is one, else the error type and message."""
    status = status_of(error)
    message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    name = type(error).__name__
    if status is not None:
        return f"HTTP {status}"
    return f"{name}: {message}" if message else name
