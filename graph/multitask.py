"""One turn at a time per thread: two concurrent turns on one thread would overwrite each other's
checkpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

MultitaskStrategy = Literal["reject", "enqueue"]


class ThreadBusyError(RuntimeError):
    """Another turn is running on the thread (multitask strategy `reject`, or `enqueue` waited too long)."""

    def __init__(self, thread_id: str, strategy: MultitaskStrategy) -> None:
        hint = "" if strategy == "reject" else " (waited for it too long)"
        super().__init__(f"thread {thread_id!r} is answering another turn{hint}; retry when it is done")
        self.thread_id = thread_id


class TurnGate:
    """One turn at a time per thread, in this process, after LangGraph Server's multitask strategies:
    `reject` (the default: a second turn on a busy thread is refused, HTTP 409) or `enqueue` (it waits its
    turn, at most `wait_s`). The locks live only while a thread has turns running or waiting.
    """

    def __init__(self, strategy: MultitaskStrategy = "reject", wait_s: float = 30.0) -> None:
        self.strategy: MultitaskStrategy = strategy
        self._wait_s = wait_s
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def turn(self, thread_id: str) -> AsyncIterator[None]:
        """Hold the thread for one turn; ThreadBusyError when it cannot be had."""
        lock = self._locks.setdefault(thread_id, asyncio.Lock())
        if self.strategy == "reject" and lock.locked():
            raise ThreadBusyError(thread_id, self.strategy)
        self._users[thread_id] = self._users.get(thread_id, 0) + 1
        try:
            try:
                async with asyncio.timeout(self._wait_s):
                    await lock.acquire()
            except TimeoutError as exc:
                raise ThreadBusyError(thread_id, self.strategy) from exc
            try:
                yield
            finally:
                lock.release()
        finally:
            self._users[thread_id] -= 1
            if not self._users[thread_id]:
                del self._users[thread_id], self._locks[thread_id]
