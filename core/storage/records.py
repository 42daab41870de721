"""The records: one durable row per answered turn, and who owns each thread (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Select, bindparam, delete, func, select, text

from core.storage.db import insert_or_ignore
from core.storage.models import threads, turns
from core.storage.workspaces import DEFAULT_WORKSPACE
from core.types import AnswerFields, Citation, Usage

# A thread first seen through a turn (CLI, Studio) belongs to nobody an API key can name.
NO_OWNER = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ThreadInfo:
    """A thread's ownership and summary, read off its turns: title is its first question (None before any
    turn), updated_at its last turn's time (or its creation's)."""

    id: str
    owner: str
    title: str | None
    turns: int
    created_at: str
    updated_at: str
    workspace: str = DEFAULT_WORKSPACE


@dataclass(frozen=True)
class TurnRecord:
    """What Docent keeps of one question and its answer."""

    thread_id: str
    question: str
    answer: AnswerFields
    latency_ms: float
    run_id: str | None = None
    created_at: str = field(default_factory=_now)
    owner: str = NO_OWNER
    """Whose thread it is when this record is the thread's first (a thread made for the turn is claimed in
    the record's transaction); ownerless by default."""
    workspace: str = DEFAULT_WORKSPACE


_INSERT_TURN = turns.insert()
_THREAD_OWNER = select(threads.c.owner, threads.c.workspace).where(threads.c.id == bindparam("thread_id"))


class TurnRecords:
    """Turn records and thread ownership in the relational database; each write is committed before it
    returns. Thread-safe (the engine pools connections); shared by every replica in server mode."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_turn(self, record: TurnRecord) -> None:
        """Store one turn durably; a thread first seen here is recorded as the record's owner's."""
        answer = record.answer
        usage = answer["usage"]
        row = {
            "thread_id": record.thread_id,
            "run_id": record.run_id,
            "question": record.question,
            "answer": answer["answer"],
            "citations": json.dumps(answer["citations"]),
            "model": answer["model"],
            "latency_ms": record.latency_ms,
            "prompt_tokens": usage["prompt_tokens"] if usage else None,
            "completion_tokens": usage["completion_tokens"] if usage else None,
            "usage_estimated": usage["estimated"] if usage else None,
            "cost_usd": answer["cost"],
            "degraded": answer["degraded"],
            "degraded_reason": answer["degraded_reason"],
            "unsupported_sentences": answer.get("unsupported_sentences"),
            "output_rule": answer.get("output_rule"),
            "cached": bool(answer.get("cached")),
            "created_at": record.created_at,
        }
        # Constant statements with their values as parameters: compiled once (SQLAlchemy's cache), where a
        # statement built with `.values(...)` per call cost more than the commit.
        with self._engine.begin() as connection:
            connection.execute(
                insert_or_ignore(connection, threads),
                {
                    "id": record.thread_id,
                    "owner": record.owner,
                    "created_at": record.created_at,
                    "workspace": record.workspace,
                },
            )
            connection.execute(_INSERT_TURN, row)

    def turns(self, thread_id: str) -> list[TurnRecord]:
        """A thread's turns, oldest first."""
        query = select(*_TURN_COLUMNS).where(turns.c.thread_id == thread_id).order_by(turns.c.id)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_record(tuple(row)) for row in rows]

    def by_run_id(self, run_id: str) -> TurnRecord | None:
        """The turn a run stored, if it got that far."""
        query = select(*_TURN_COLUMNS).where(turns.c.run_id == run_id).order_by(turns.c.id).limit(1)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return _record(tuple(row)) if row else None

    def claim_thread(self, thread_id: str, owner: str, workspace: str = DEFAULT_WORKSPACE) -> bool:
        """Make `owner` (a key id, in `workspace`) the owner of a thread nobody has used yet; True when
        `owner` owns it there now."""
        with self._engine.begin() as connection:
            connection.execute(
                insert_or_ignore(connection, threads),
                {"id": thread_id, "owner": owner, "created_at": _now(), "workspace": workspace},
            )
            row = connection.execute(_THREAD_OWNER, {"thread_id": thread_id}).first()
        return row is not None and (row[0], row[1]) == (owner, workspace)

    def thread(self, thread_id: str) -> ThreadInfo | None:
        """One thread's summary, or None when it has never been used."""
        with self._engine.connect() as connection:
            row = connection.execute(_thread_select().where(threads.c.id == thread_id)).first()
        return ThreadInfo(*row) if row else None

    def threads(
        self, owner: str, *, limit: int, offset: int, workspace: str = DEFAULT_WORKSPACE
    ) -> tuple[list[ThreadInfo], int]:
        """An owner's threads in a workspace, most recently updated first, and how many there are in all."""
        mine = (threads.c.owner == owner) & (threads.c.workspace == workspace)
        listing = _thread_select().where(mine).order_by(text("updated_at DESC"), threads.c.id)
        with self._engine.connect() as connection:
            rows = connection.execute(listing.limit(limit).offset(offset)).all()
            total = connection.execute(select(func.count()).select_from(threads).where(mine)).scalar_one()
        return [ThreadInfo(*row) for row in rows], int(total)

    def delete_thread(self, thread_id: str) -> int:
        """Remove a thread and its turn records; returns the number of turns removed."""
        with self._engine.begin() as connection:
            removed = connection.execute(delete(turns).where(turns.c.thread_id == thread_id)).rowcount
            connection.execute(delete(threads).where(threads.c.id == thread_id))
        return int(removed)

    def ping(self) -> None:
        """Raise if the database cannot be read."""
        with self._engine.connect() as connection:
            connection.execute(select(threads.c.id).limit(1)).all()

    def close(self) -> None:
        """Nothing to close: the engine belongs to the composition root."""


_TURN_COLUMNS = (
    turns.c.thread_id,
    turns.c.run_id,
    turns.c.question,
    turns.c.answer,
    turns.c.citations,
    turns.c.model,
    turns.c.latency_ms,
    turns.c.prompt_tokens,
    turns.c.completion_tokens,
    turns.c.created_at,
    turns.c.usage_estimated,
    turns.c.cost_usd,
    turns.c.degraded,
    turns.c.degraded_reason,
    turns.c.unsupported_sentences,
    turns.c.output_rule,
    turns.c.cached,
)


def _thread_select() -> Select[Any]:
    """Thread id, owner, title (first question), turn count, created_at, updated_at, workspace."""
    of_thread = turns.c.thread_id == threads.c.id
    first_question = select(turns.c.question).where(of_thread).order_by(turns.c.id).limit(1).scalar_subquery()
    count = select(func.count()).select_from(turns).where(of_thread).scalar_subquery()
    last = select(func.max(turns.c.created_at)).where(of_thread).scalar_subquery()
    return select(
        threads.c.id,
        threads.c.owner,
        first_question,
        count,
        threads.c.created_at,
        func.coalesce(last, threads.c.created_at).label("updated_at"),
        threads.c.workspace,
    )


def _record(row: tuple[Any, ...]) -> TurnRecord:
    (
        thread_id,
        run_id,
        question,
        answer,
        citations,
        model,
        latency_ms,
        prompt,
        completion,
        created_at,
        estimated,
        cost,
        degraded,
        degraded_reason,
        unsupported_sentences,
        output_rule,
        cached,
    ) = row
    usage: Usage | None = None
    if prompt is not None or completion is not None:
        usage = Usage(
            prompt_tokens=prompt or 0,
            completion_tokens=completion or 0,
            total_tokens=(prompt or 0) + (completion or 0),
            estimated=bool(estimated),
        )
    return TurnRecord(
        thread_id=thread_id,
        run_id=run_id,
        question=question,
        answer=AnswerFields(
            answer=answer,
            # Rows written before citations carried `cited` listed only the passages the answer cited.
            citations=[cast(Citation, {"cited": True, **citation}) for citation in json.loads(citations)],
            model=model,
            usage=usage,
            cost=cost,
            degraded=bool(degraded),
            degraded_reason=degraded_reason,
            unsupported_sentences=unsupported_sentences,
            output_rule=output_rule,
            cached=bool(cached),
        ),
        latency_ms=latency_ms,
        created_at=created_at,
    )
