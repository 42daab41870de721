"""The records database: one durable row per answered turn (SQLite by default)."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.types import AnswerFields, Usage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id TEXT NOT NULL,
    run_id TEXT,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    model TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_thread ON turns (thread_id, id);
CREATE TABLE IF NOT EXISTS threads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_owner ON threads (owner);
"""

# A thread first seen through a turn (CLI, Studio) belongs to nobody an API key can name.
NO_OWNER = ""

# Columns added after the first release; a database made before them gets them on open.
_ADDED_COLUMNS = {
    "usage_estimated": "INTEGER",
    "cost_usd": "REAL",
    "degraded": "INTEGER NOT NULL DEFAULT 0",
    "degraded_reason": "TEXT",
}
_COLUMNS = (
    "thread_id, run_id, question, answer, citations, model, latency_ms, prompt_tokens, completion_tokens,"
    " created_at, usage_estimated, cost_usd, degraded, degraded_reason"
)


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


@dataclass(frozen=True)
class TurnRecord:
    """What Docent keeps of one question and its answer."""

    thread_id: str
    question: str
    answer: AnswerFields
    latency_ms: float
    run_id: str | None = None
    created_at: str = field(default_factory=_now)


class SqliteRecords:
    """Turn records in one SQLite file; each write is committed (and fsynced) before it returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(turns)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._conn.execute(f"ALTER TABLE turns ADD COLUMN {column} {kind}")

    def add_turn(self, record: TurnRecord) -> None:
        """Store one turn durably; a thread first seen here is recorded as ownerless."""
        answer = record.answer
        usage = answer["usage"]
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "INSERT OR IGNORE INTO threads (id, owner, created_at) VALUES (?, ?, ?)",
                (record.thread_id, NO_OWNER, record.created_at),
            )
            self._conn.execute(
                f"INSERT INTO turns ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.thread_id,
                    record.run_id,
                    record.question,
                    answer["answer"],
                    json.dumps(answer["citations"]),
                    answer["model"],
                    record.latency_ms,
                    usage["prompt_tokens"] if usage else None,
                    usage["completion_tokens"] if usage else None,
                    record.created_at,
                    int(usage["estimated"]) if usage else None,
                    answer["cost"],
                    int(answer["degraded"]),
                    answer["degraded_reason"],
                ),
            )

    def turns(self, thread_id: str) -> list[TurnRecord]:
        """A thread's turns, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM turns WHERE thread_id = ? ORDER BY id",
                (thread_id,),
            ).fetchall()
        return [_record(row) for row in rows]

    def claim_thread(self, thread_id: str, owner: str) -> bool:
        """Make `owner` the owner of a thread nobody has used yet; True when `owner` owns it now."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO threads (id, owner, created_at) VALUES (?, ?, ?)",
                (thread_id, owner, _now()),
            )
            row = self._conn.execute("SELECT owner FROM threads WHERE id = ?", (thread_id,)).fetchone()
        return row is not None and row[0] == owner

    def thread(self, thread_id: str) -> ThreadInfo | None:
        """One thread's summary, or None when it has never been used."""
        with self._lock:
            row = self._conn.execute(_THREAD_SELECT + " WHERE t.id = ?", (thread_id,)).fetchone()
        return ThreadInfo(*row) if row else None

    def threads(self, owner: str, *, limit: int, offset: int) -> tuple[list[ThreadInfo], int]:
        """An owner's threads, most recently updated first, and how many there are in all."""
        with self._lock:
            rows = self._conn.execute(
                _THREAD_SELECT + " WHERE t.owner = ? ORDER BY updated_at DESC, t.id LIMIT ? OFFSET ?",
                (owner, limit, offset),
            ).fetchall()
            (total,) = self._conn.execute("SELECT count(*) FROM threads WHERE owner = ?", (owner,)).fetchone()
        return [ThreadInfo(*row) for row in rows], int(total)

    def delete_thread(self, thread_id: str) -> int:
        """Remove a thread and its turn records; returns the number of turns removed."""
        with self._lock, self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            removed = self._conn.execute("DELETE FROM turns WHERE thread_id = ?", (thread_id,)).rowcount
            self._conn.execute("DELETE FROM threads WHERE id = ?", (thread_id,))
        return int(removed)

    def ping(self) -> None:
        """Raise if the database cannot be read."""
        with self._lock:
            self._conn.execute("SELECT 1 FROM threads LIMIT 1").fetchall()

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._conn.close()


_THREAD_SELECT = (
    "SELECT t.id, t.owner,"
    " (SELECT question FROM turns WHERE thread_id = t.id ORDER BY id LIMIT 1),"
    " (SELECT count(*) FROM turns WHERE thread_id = t.id),"
    " t.created_at,"
    " coalesce((SELECT max(created_at) FROM turns WHERE thread_id = t.id), t.created_at) AS updated_at"
    " FROM threads t"
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
            citations=json.loads(citations),
            model=model,
            usage=usage,
            cost=cost,
            degraded=bool(degraded),
            degraded_reason=degraded_reason,
        ),
        latency_ms=latency_ms,
        created_at=created_at,
    )
