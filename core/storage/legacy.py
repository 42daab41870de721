"""Embedded data dirs from before the relational database: their turn records (`records.sqlite`) and their
source records and keyword rows (`keywords.sqlite`) are copied into the database on first open, then each old
file is renamed `*.imported`, so nothing answered or ingested before is lost and nothing is imported twice.

Threads owned by key names (before workspaces) go to the id and workspace of the key with that name; a name
no key has now is kept behind UNMIGRATED_OWNER, which no key id has, so such threads stay unreachable.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from sqlalchemy import Engine

from core.storage.db import insert_or_ignore
from core.storage.models import threads, turns
from core.storage.workspaces import DEFAULT_WORKSPACE

log = logging.getLogger(__name__)

LEGACY_RECORDS = "records.sqlite"
LEGACY_KEYWORDS = "keywords.sqlite"
UNMIGRATED_OWNER = "name:"
_OWNERS_BY_ID = 1  # the old file's user_version once its owners were key ids

KeyOwners = dict[str, tuple[str, str]]
"""Key name -> (key id, workspace), for threads owned by names."""

_THREAD_COLUMNS = ("id", "owner", "created_at", "workspace")
_TURN_COLUMNS = (
    "thread_id",
    "run_id",
    "question",
    "answer",
    "citations",
    "model",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "usage_estimated",
    "cost_usd",
    "degraded",
    "degraded_reason",
    "created_at",
)


def import_legacy_records(engine: Engine, data_dir: Path, key_owners: Callable[[], KeyOwners]) -> int:
    """Copy `<data_dir>/records.sqlite` into the database if it is there; returns the turns copied."""
    path = data_dir / LEGACY_RECORDS
    if not path.is_file():
        return 0
    with closing(sqlite3.connect(path)) as old:
        tables = {row[0] for row in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (version,) = old.execute("PRAGMA user_version").fetchone()
        thread_rows = _rows(old, "threads", _THREAD_COLUMNS) if "threads" in tables else []
        turn_rows = _rows(old, "turns", _TURN_COLUMNS) if "turns" in tables else []
    try:
        owners = key_owners() if version < _OWNERS_BY_ID and thread_rows else {}
    except ValueError as exc:  # a malformed keys file: try again on the next open
        log.error("%s not imported yet (its threads are owned by key names): %s", path, exc)
        return 0
    for row in thread_rows:
        row["workspace"] = row["workspace"] or DEFAULT_WORKSPACE
        name = str(row["owner"])
        if version < _OWNERS_BY_ID and name and not (name == "anonymous" and name not in owners):
            row["owner"], row["workspace"] = owners.get(name, (UNMIGRATED_OWNER + name, DEFAULT_WORKSPACE))
    for row in turn_rows:
        row["degraded"] = bool(row["degraded"])
        if row["usage_estimated"] is not None:
            row["usage_estimated"] = bool(row["usage_estimated"])
    with engine.begin() as connection:
        if thread_rows:
            connection.execute(insert_or_ignore(connection, threads), thread_rows)
        known = {row["thread_id"] for row in turn_rows}
        for thread_id in known:  # a turn's thread, if the old file never listed it
            connection.execute(
                insert_or_ignore(connection, threads).values(
                    id=thread_id, owner="", created_at="", workspace=DEFAULT_WORKSPACE
                )
            )
        if turn_rows:
            connection.execute(turns.insert(), turn_rows)
    path.rename(path.with_name(path.name + ".imported"))
    log.info("imported %d turns of %d threads from %s", len(turn_rows), len(thread_rows), path)
    return len(turn_rows)


def _rows(db: sqlite3.Connection, table: str, wanted: tuple[str, ...]) -> list[dict[str, object]]:
    """Every row of an old table as a mapping of `wanted` columns (None for a column it never had)."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    chosen = [c if c in present else f"NULL AS {c}" for c in wanted]
    cursor = db.execute(f"SELECT {', '.join(chosen)} FROM {table} ORDER BY rowid")
    return [dict(zip(wanted, row, strict=True)) for row in cursor]


def import_legacy_keywords(engine: Engine, data_dir: Path) -> int:
    """Copy `<data_dir>/keywords.sqlite` (source records, and each collection's FTS5 rows) into the database
    if it is there, in one transaction; returns the keyword rows copied."""
    from core.retrieval.keyword_index import KeywordIndex
    from core.storage.sources import SourceCatalog, SourceRecord

    path = data_dir / LEGACY_KEYWORDS
    if not path.is_file():
        return 0
    chunks: dict[str, list[tuple[str, str, str]]] = {}
    with closing(sqlite3.connect(path)) as old:
        tables = {row[0] for row in old.execute("SELECT name FROM sqlite_master")}
        records = [
            SourceRecord(**row)  # type: ignore[arg-type]
            for row in (_rows(old, "sources", _SOURCE_COLUMNS) if "sources" in tables else [])
        ]
        for collection in sorted({record.collection for record in records}):
            table = "kw_" + hashlib.sha1(collection.encode()).hexdigest()[:16]
            if {f"{table}_rows", f"{table}_fts"} <= tables:
                chunks[collection] = old.execute(
                    f"SELECT r.chunk_id, f.text, r.source FROM {table}_rows r"
                    f" JOIN {table}_fts f ON f.rowid = r.rowid ORDER BY r.rowid"
                ).fetchall()
    with KeywordIndex(engine).transaction() as tx:
        for collection, rows in chunks.items():
            ids, texts, sources = (
                (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [])
            )
            tx.upsert(collection, ids, texts, sources)
        for record in records:
            SourceCatalog.put(tx.connection, record)
    path.rename(path.with_name(path.name + ".imported"))
    copied = sum(len(rows) for rows in chunks.values())
    log.info("imported %d sources and %d keyword rows from %s", len(records), copied, path)
    return copied


_SOURCE_COLUMNS = (
    "collection",
    "id",
    "uri",
    "content_hash",
    "title",
    "kind",
    "pages",
    "chunks",
    "embedding_model",
    "chunking",
    "ingested_at",
    "last_error",
)
