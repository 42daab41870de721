"""One turn at a time per thread: two concurrent turns on one thread would overwrite each other's
checkpoint. In one process an asyncio lock per thread is enough; replicas sharing a thread (server mode)
also take a lock in Redis, with a TTL renewed while the turn runs, so a replica killed mid-turn frees its
threads within seconds."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Literal

import anyio
import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from core.errors import DependencyUnavailable

MultitaskStrategy = Literal["reject", "enqueue"]
log = logging.getLogger(__name__)

TURN_LOCK_TTL_S = 15.0
"""Life of a thread's Redis lock unless renewed: how long a killed replica's thread stays busy at most."""
REDIS_TIMEOUT_S = 2.0
"""Connect and read timeout of one Redis call: past it the turn is refused with a 503, not left to hang."""
POLL_S = 0.05
"""How often an enqueued turn asks Redis whether the thread is free."""


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
        deadline = asyncio.get_running_loop().time() + self._wait_s
        async with self._local(thread_id, deadline), self._shared(thread_id, deadline):
            yield

    @asynccontextmanager
    async def _local(self, thread_id: str, deadline: float) -> AsyncIterator[None]:
        """The thread's lock in this process (turns of this process queue here, not on a shared store)."""
        lock = self._locks.setdefault(thread_id, asyncio.Lock())
        if self.strategy == "reject" and lock.locked():
            raise ThreadBusyError(thread_id, self.strategy)
        self._users[thread_id] = self._users.get(thread_id, 0) + 1
        try:
            try:
                async with asyncio.timeout_at(deadline):
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

    def _shared(self, thread_id: str, deadline: float) -> AbstractAsyncContextManager[None]:
        """The thread's lock among replicas: none for one process."""
        return nullcontext()

    async def aclose(self) -> None:
        """Release connections (none here)."""


class RedisTurnGate(TurnGate):
    """TurnGate across replicas: after this process's own lock, the turn takes `<prefix>:turn:<thread>` in
    Redis (SET NX with a TTL of `ttl_s`, renewed every third of it while the turn runs). `reject` refuses at
    once when another replica holds it; `enqueue` polls until it is free, at most `wait_s` in all. Redis
    unreachable: DependencyUnavailable (HTTP 503), never a turn run unguarded.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        strategy: MultitaskStrategy = "reject",
        wait_s: float = 30.0,
        ttl_s: float = TURN_LOCK_TTL_S,
    ) -> None:
        super().__init__(strategy, wait_s)
        self._client = client
        self._prefix = prefix
        self._ttl_s = ttl_s

    @classmethod
    def from_url(
        cls, url: str, prefix: str, strategy: MultitaskStrategy = "reject", wait_s: float = 30.0
    ) -> RedisTurnGate:
        """A gate on its own connection pool to the Redis at `url` (connections open on first use)."""
        client = aioredis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        return cls(client, prefix, strategy, wait_s)

    def key(self, thread_id: str) -> str:
        """The Redis key of a thread's lock."""
        return f"{self._prefix}:turn:{thread_id}"

    @asynccontextmanager
    async def _shared(self, thread_id: str, deadline: float) -> AsyncIterator[None]:
        lock = Lock(
            self._client,
            self.key(thread_id),
            timeout=self._ttl_s,
            sleep=POLL_S,
            thread_local=False,
            raise_on_release_error=False,
        )
        if not await self._acquire(lock, deadline):
            raise ThreadBusyError(thread_id, self.strategy)
        renewal = asyncio.create_task(self._renew(lock, thread_id))
        try:
            yield
        finally:
            renewal.cancel()
            with anyio.CancelScope(shield=True):  # a cancelled turn must still free its thread
                await asyncio.wait([renewal])
                await self._release(lock, thread_id)

    async def _acquire(self, lock: Lock, deadline: float) -> bool:
        token = uuid.uuid4().hex.encode()
        try:
            if self.strategy == "reject":
                return bool(await lock.acquire(blocking=False, token=token))
            left = max(deadline - asyncio.get_running_loop().time(), 0.0)
            return bool(await lock.acquire(blocking=True, blocking_timeout=left, token=token))
        except RedisError as exc:
            raise DependencyUnavailable("redis", f"the turn lock cannot be taken: {exc}") from exc

    async def _renew(self, lock: Lock, thread_id: str) -> None:
        """Reset the lock's TTL every third of it until cancelled. A lost lock (expired during a Redis outage
        longer than the TTL) is logged: the turn goes on, but another replica may have started one."""
        while True:
            await asyncio.sleep(self._ttl_s / 3)
            try:
                await lock.reacquire()
            except LockError:
                log.error("thread %s: its turn lock expired while the turn ran", thread_id)
                return
            except RedisError as exc:
                log.warning("thread %s: cannot renew its turn lock (%s); retrying", thread_id, exc)

    async def _release(self, lock: Lock, thread_id: str) -> None:
        try:
            with anyio.move_on_after(REDIS_TIMEOUT_S * 2):
                await lock.release()
        except (LockError, RedisError) as exc:  # it expires by itself
            log.warning("thread %s: cannot release its turn lock (%s)", thread_id, exc)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self._client.aclose()
