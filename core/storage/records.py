"""The records database: one durable row per answered turn (SQLite by default)."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.storage.workspaces import DEFAULT_WORKSPACE
from core.types import AnswerFields, Usage

log = logging.getLogger(__name__)

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
    created_at TEXT NOT NULL,
    workspace TEXT NOT NULL DEFAULT 'default'
);
CREATE INDEX IF NOT EXISTS threads_owner ON threads (owner);
"""

# A thread first seen through a turn (CLI, Studio) belongs to nobody an API key can name.
NO_OWNER = ""
# Thread owners are key ids since schema version 1; before, they were key names. A name the migration could
# not map to exactly one key is kept behind this prefix, which no key id has: such threads are unreachable.
UNMIGRATED_OWNER = "name:"
_OWNERS_BY_ID = 1

KeyOwners = dict[str, tuple[str, str]]
"""Key name -> (key id, workspace), for migrating threads owned by names."""

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


class SqliteRecords:
    """Turn records in one SQLite file; each write is committed (and fsynced) before it returns.

    `key_owners` reads the configured keys; it is called once, to migrate a database whose threads are owned
    by key names (before workspaces) to key ids.
    """

    def __init__(self, path: Path, key_owners: Callable[[], KeyOwners] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        fresh = self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'threads'").fetchone() is None
        self._conn.executescript(_SCHEMA)
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(turns)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._conn.execute(f"ALTER TABLE turns ADD COLUMN {column} {kind}")
        if "workspace" not in {row[1] for row in self._conn.execute("PRAGMA table_info(threads)")}:
            self._conn.execute(
                f"ALTER TABLE threads ADD COLUMN workspace TEXT NOT NULL DEFAULT '{DEFAULT_WORKSPACE}'"
            )
        if fresh:
            self._conn.execute(f"PRAGMA user_version = {_OWNERS_BY_ID}")
        elif key_owners is not None:
            self._migrate_owners(key_owners)

    def _migrate_owners(self, key_owners: Callable[[], KeyOwners]) -> None:
        """Once: each thread owned by a key name goes to the id (and workspace) of the key with that name;
        a name no key has now is kept unreachable. Ownerless and auth-off (`anonymous`) threads stay as
        they are, unless a key is named `anonymous`."""
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version >= _OWNERS_BY_ID:
            return
        try:
            owners = key_owners()
        except ValueError as exc:  # a malformed keys file: try again on the next open
            log.error("threads not migrated to key ids yet: %s", exc)
            return
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            names = [row[0] for row in self._conn.execute("SELECT DISTINCT owner FROM threads")]
            for name in names:
                if name == NO_OWNER or (name == "anonymous" and name not in owners):
                    continue
                key, workspace = owners.get(name, (UNMIGRATED_OWNER + name, DEFAULT_WORKSPACE))
                self._conn.execute(
                    "UPDATE threads SET owner = ?, workspace = ? WHERE owner = ?", (key, workspace, name)
                )
            self._conn.execute(f"PRAGMA user_version = {_OWNERS_BY_ID}")

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

    def claim_thread(self, thread_id: str, owner: str, workspace: str = DEFAULT_WORKSPACE) -> bool:
        """Make `owner` (a key id, in `workspace`) the owner of a thread nobody has used yet; True when
        `owner` owns it there now."""
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO threads (id, owner, created_at, workspace) VALUES (?, ?, ?, ?)",
                (thread_id, owner, _now(), workspace),
            )
            row = self._conn.execute(
                "SELECT owner, workspace FROM threads WHERE id = ?", (thread_id,)
            ).fetchone()
        return row is not None and (row[0], row[1]) == (owner, workspace)

    def thread(self, thread_id: str) -> ThreadInfo | None:
        """One thread's summary, or None when it has never been used."""
        with self._lock:
            row = self._conn.execute(_THREAD_SELECT + " WHERE t.id = ?", (thread_id,)).fetchone()
        return ThreadInfo(*row) if row else None

    def threads(
        self, owner: str, *, limit: int, offset: int, workspace: str = DEFAULT_WORKSPACE
    ) -> tuple[list[ThreadInfo], int]:
        """An owner's threads in a workspace, most recently updated first, and how many there are in all."""
        where = " WHERE t.owner = ? AND t.workspace = ?"
        with self._lock:
            rows = self._conn.execute(
                _THREAD_SELECT + where + " ORDER BY updated_at DESC, t.id LIMIT ? OFFSET ?",
                (owner, workspace, limit, offset),
            ).fetchall()
            (total,) = self._conn.execute(
                "SELECT count(*) FROM threads t" + where, (owner, workspace)
            ).fetchone()
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
    " coalesce((SELECT max(created_at) FROM turns WHERE thread_id = t.id), t.created_at) AS updated_at,"
    " t.workspace"
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
