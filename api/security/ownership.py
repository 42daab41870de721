"""Threads belong to the key that made them (its id, in its workspace): every route resolves a thread id
through here, so another key's thread is a 404 everywhere (never a 403, which would confirm that it exists).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Path

from api.deps import RecordsDep
from api.schemas import SAMPLE_THREAD_ID, THREAD_ID_PATTERN
from api.security.auth import QueryCaller
from core.answering.cache import CacheProbe
from core.services import Services
from core.storage.keys import Principal
from core.storage.records import ThreadInfo, TurnRecords
from core.types import DocentContext, PriorMessage
from graph.turn import begin_lookup, new_thread_id


class ThreadNotFound(HTTPException):
    """404 for a thread the caller does not own (or that does not exist)."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(404, f"no thread {thread_id!r}")


async def thread_for_turn(records: TurnRecords, principal: Principal, thread_id: str | None) -> str:
    """The thread a turn runs on: a new one owned by the caller when none is given; a given id is claimed for
    the caller when nobody has used it yet, and is a 404 when someone else has.
    """
    thread = thread_id or new_thread_id()
    if not await asyncio.to_thread(records.claim_thread, thread, principal.id, principal.workspace):
        raise ThreadNotFound(thread)
    return thread


async def thread_and_lookup(
    services: Services,
    principal: Principal,
    thread_id: str | None,
    question: str,
    context: DocentContext,
    history: Sequence[PriorMessage] | None = None,
) -> tuple[str | None, asyncio.Future[CacheProbe] | None]:
    """The thread a turn runs on, and for a turn that makes its own (whose turn is certainly a first one)
    the answer cache's lookup of the question, begun now; give both to run_turn or stream_turn (`thread_id`,
    `lookup`), with the caller as `owner`. A given id is claimed for the caller here, or is a 404
    (`thread_for_turn`). Embedded, no id stays None: the turn makes a new thread, which is claimed for `owner`
    in the same transaction as the turn's record (one write fewer; nobody else can know the id before). In
    server mode a new thread is claimed here first, as a given one is: that write fails at once when
    PostgreSQL is down, where the turn's first database call (its checkpoint) would wait out the pool."""
    lookup = begin_lookup(services.answer_cache, question, context, history) if thread_id is None else None
    if thread_id is None and not services.settings.server_mode:
        return None, lookup
    return await thread_for_turn(services.records, principal, thread_id), lookup


async def owned_thread(records: TurnRecords, principal: Principal, thread_id: str) -> ThreadInfo:
    """The caller's thread by id; 404 when it is not theirs."""
    info = await asyncio.to_thread(records.thread, thread_id)
    if info is None or (info.owner, info.workspace) != (principal.id, principal.workspace):
        raise ThreadNotFound(thread_id)
    return info


ThreadId = Annotated[
    str, Path(pattern=THREAD_ID_PATTERN, description="The thread's id.", examples=[SAMPLE_THREAD_ID])
]


async def _owned_thread_dep(thread_id: ThreadId, records: RecordsDep, caller: QueryCaller) -> ThreadInfo:
    return await owned_thread(records, caller, thread_id)


OwnedThread = Annotated[ThreadInfo, Depends(_owned_thread_dep)]
"""The `{thread_id}` of the path, which the caller must own (else 404): every thread route takes this."""
