"""Readiness checks run at most once at a time each, with a deadline (GET /ready)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from core.errors import unavailable

CHECK_TIMEOUT_S = 2.0

Probe = Callable[[], Awaitable[str | None]]


class ProbeRunner:
    """Runs each check at most once at a time: a check still running from an earlier call is waited on
    again, not started twice, so a hung store cannot fill the worker threads with probes.
    """

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[str | None]] = {}

    async def run(self, name: str, probe: Probe) -> str:
        """`ok`, or why the check failed (its error, or a timeout)."""
        task = self._running.get(name)
        if task is None or task.done():
            task = asyncio.ensure_future(probe())
            task.add_done_callback(_consume)
            self._running[name] = task
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                failure = await asyncio.shield(task)
        except TimeoutError:
            return f"timed out after {CHECK_TIMEOUT_S:g}s"
        except Exception as exc:  # an unreachable dependency says so in one line, not a driver's page
            down = unavailable(exc)
            return str(down) if down is not None else f"{type(exc).__name__}: {exc}"
        return failure or "ok"


def _consume(task: asyncio.Task[str | None]) -> None:
    """Retrieve a finished check's exception, so one nobody waited for is not reported as lost."""
    if not task.cancelled():
        task.exception()
