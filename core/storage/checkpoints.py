"""LangGraph checkpointers: where each conversation thread's state is kept between requests.

Embedded: a SQLite file under the data dir, through `ThreadedSqliteSaver`. Server mode (DOCENT_DATABASE_URL
on PostgreSQL): LangGraph's AsyncPostgresSaver over a psycopg connection pool, so every replica reads and
writes the same threads. Its tables are made by `docent db upgrade` (`setup_checkpoints`), never by a replica
at start: a replica on a database without them refuses to start, naming the command, as for the relational
schema.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from core.settings import Settings
from core.storage.db import RECHECK_AFTER_S, UPGRADE_COMMAND, SchemaError

POOL_TIMEOUT_S = 5.0
"""Longest wait for a pooled PostgreSQL connection before a turn fails (PoolTimeout), rather than hang."""
_SETUP_LOCK = 0x646F63656E74  # "docent": the advisory lock two `docent db upgrade` runs take in turn


class _CheckWhenIdle:
    """The pool's check: a connection out of use for more than RECHECK_AFTER_S is checked with a round trip
    (replaced when broken) before it is handed out; one in use moments ago is handed out as it is. A turn
    takes a dozen checkouts, so checking every one cost a dozen round trips per turn."""

    def __init__(self) -> None:
        self._last_out: weakref.WeakKeyDictionary[AsyncConnection[DictRow], float]
        self._last_out = weakref.WeakKeyDictionary()

    async def __call__(self, connection: AsyncConnection[DictRow]) -> None:
        now = time.monotonic()
        if now - self._last_out.get(connection, float("-inf")) > RECHECK_AFTER_S:
            await AsyncConnectionPool.check_connection(connection)
        self._last_out[connection] = now


def _connection_kwargs() -> dict[str, Any]:
    # What AsyncPostgresSaver needs of its connections: it commits its own writes, runs the same statements
    # through poolers that cannot keep prepared statements, and reads rows as dicts.
    return {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


@asynccontextmanager
async def _postgres_pool(settings: Settings) -> AsyncIterator[AsyncConnectionPool[AsyncConnection[DictRow]]]:
    """A pool on DOCENT_DATABASE_URL whose idle connections are checked before use, so a restarted PostgreSQL
    is reconnected to without restarting Docent."""
    assert settings.database_url is not None
    pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=settings.database_pool_size,
        kwargs=_connection_kwargs(),
        timeout=POOL_TIMEOUT_S,
        check=_CheckWhenIdle(),
        open=False,
    )
    await pool.open(wait=True, timeout=POOL_TIMEOUT_S)
    try:
        yield pool
    finally:
        await pool.close()


async def _checkpoint_revision(pool: AsyncConnectionPool[AsyncConnection[DictRow]]) -> int | None:
    """The newest checkpoint migration applied (None: the tables were never made)."""
    async with pool.connection() as conn:
        found = await conn.execute("SELECT to_regclass('checkpoint_migrations') AS t")
        row = await found.fetchone()
        if row is None or row["t"] is None:
            return None
        latest = await conn.execute("SELECT max(v) AS v FROM checkpoint_migrations")
        row = await latest.fetchone()
        return None if row is None else row["v"]


async def _check_checkpoint_schema(
    saver: AsyncPostgresSaver, pool: AsyncConnectionPool[AsyncConnection[DictRow]]
) -> None:
    head = len(saver.MIGRATIONS) - 1
    current = await _checkpoint_revision(pool)
    if current is None or current < head:
        state = "has no checkpoint tables" if current is None else f"has checkpoint migration {current}"
        raise SchemaError(
            f"the database {state}; this version of Docent needs checkpoint migration {head}:"
            f" run `{UPGRADE_COMMAND}` (with the same DOCENT_DATABASE_URL) first"
        )


async def _try_setup_lock(conn: AsyncConnection[DictRow]) -> bool:
    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_SETUP_LOCK,))).fetchone()
    return bool(row and row["ok"])


async def setup_checkpoints(settings: Settings) -> None:
    """Create or migrate the PostgreSQL checkpoint tables (`docent db upgrade`); nothing to do when embedded
    (the SQLite saver makes its own tables). Runs under an advisory lock: two upgrades at once take turns."""
    if not settings.server_mode:
        return
    async with _postgres_pool(settings) as pool, pool.connection() as lock:
        # Polled, not waited for in pg_advisory_lock: a session blocked in a statement would stall the
        # other upgrade's CREATE INDEX CONCURRENTLY, which waits for every open transaction.
        while True:
            if await _try_setup_lock(lock):
                break
            await asyncio.sleep(0.2)
        try:
            await AsyncPostgresSaver(pool).setup()
        finally:
            await lock.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """Open the configured checkpointer for the life of the app: PostgreSQL in server mode (SchemaError when
    its tables are missing or old), else a SQLite file under the data dir (or memory)."""
    if settings.checkpointer == "memory":
        yield InMemorySaver()
        return
    if settings.server_mode:
        async with _postgres_pool(settings) as pool:
            saver = AsyncPostgresSaver(pool)
            await _check_checkpoint_schema(saver, pool)
            yield saver
        return
    path = settings.checkpoint_db
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    sqlite_saver = await asyncio.to_thread(ThreadedSqliteSaver.open, str(path))
    try:
        yield sqlite_saver
    finally:
        await asyncio.to_thread(sqlite_saver.conn.close)


class ThreadedSqliteSaver(SqliteSaver):
    """LangGraph's SqliteSaver (its tables, rows and lock), whose async methods run its sync ones in a
    worker thread: one thread hop per checkpoint read or write. LangGraph's AsyncSqliteSaver (aiosqlite)
    makes one hop to its connection's thread per statement and per fetch, about twenty for a turn's reads
    and writes; this takes a third less time for a turn's checkpoints (docs/benchmarks.md). The file is the
    same either way: a data dir written by one reads with the other."""

    @classmethod
    def open(cls, path: str) -> ThreadedSqliteSaver:
        """A saver on a new connection to `path`, its tables made (blocking)."""
        # The saver's lock serialises every use of the connection, so any thread may hold it.
        saver = cls(sqlite3.connect(path, check_same_thread=False))
        saver.setup()
        return saver

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """get_tuple in a worker thread."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """list in a worker thread, read whole (it holds the saver's lock while it reads)."""

        def read() -> list[CheckpointTuple]:
            return list(self.list(config, filter=filter, before=before, limit=limit))

        for found in await asyncio.to_thread(read):
            yield found

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """put in a worker thread."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """put_writes in a worker thread."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """delete_thread in a worker thread."""
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """get_delta_channel_history in a worker thread."""
        return await asyncio.to_thread(
            lambda: self.get_delta_channel_history(config=config, channels=channels)
        )
