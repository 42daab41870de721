"""The relational database: one SQLAlchemy engine per process, on the SQLite file under the data dir by
default or on PostgreSQL (`DOCENT_DATABASE_URL`), with its schema kept by Alembic.

A fresh embedded SQLite file is brought to the current schema on first open, so `docent ingest` and
`docent ask` need no setup step. Any other database at an older revision (or none) is refused with a
SchemaError naming `docent db upgrade`: replicas sharing a server never migrate it behind each other's back.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from core.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
UPGRADE_COMMAND = "docent db upgrade"


class SchemaError(RuntimeError):
    """The database's schema is not the one this version of Docent uses."""


def insert_or_ignore(connection: Connection, table: Table) -> Insert:
    """An INSERT that leaves an existing row with the same key as it is (ON CONFLICT DO NOTHING), in the
    dialect of `connection`."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()


def sqlalchemy_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the configured database: a libpq `postgresql://` URL is driven by psycopg 3."""
    url = settings.database_url
    if not url:
        return f"sqlite:///{settings.relational_db}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


RECHECK_AFTER_S = 1.0
"""A pooled PostgreSQL connection unused for longer than this is pinged before it is handed out (and replaced
when the ping fails: PostgreSQL restarted); one in use moments ago is handed out without the round trip."""


def make_engine(settings: Settings) -> Engine:
    """An engine on the configured database: SQLite in WAL mode with full fsync, or a pooled PostgreSQL."""
    url = make_url(sqlalchemy_url(settings))
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )
    event.listen(engine, "checkout", _ping_when_idle)
    event.listen(engine, "checkin", _note_checkin)
    return engine


def _ping_when_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for connections idle over RECHECK_AFTER_S only:
    DisconnectionError makes the pool drop this connection and hand out a fresh one."""
    if time.monotonic() - record.info.get("checked_in", float("-inf")) <= RECHECK_AFTER_S:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()  # leave no transaction open behind the ping
    except Exception as exc:
        raise DisconnectionError(f"stale pooled connection: {exc}") from exc


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration's revision."""
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Apply the migrations up to `revision`; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(_alembic_config(engine), revision)
    return before, current_revision(engine) or ""


def check_schema(engine: Engine) -> None:
    """Raise SchemaError unless the database is at the newest revision. An embedded SQLite file is brought
    there itself: a fresh one is created, an older one upgraded (one process owns an embedded data dir, so
    the embedded default stays as easy as before a migration); PostgreSQL, shared by replicas, waits for
    `docent db upgrade`."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if engine.dialect.name == "sqlite":
        if current is None and not inspect(engine).get_table_names():
            log.info("creating the database schema in %s", engine.url.database)
            upgrade(engine)
            return
        if current in _revisions():
            log.warning(
                "upgrading the database schema in %s from %s to %s", engine.url.database, current, head
            )
            upgrade(engine)
            return
    where = engine.url.render_as_string(hide_password=True)
    state = "has no Docent schema" if current is None else f"is at schema revision {current}"
    raise SchemaError(
        f"the database {where} {state}; this version of Docent needs revision {head}:"
        f" run `{UPGRADE_COMMAND}` (with the same DOCENT_DATABASE_URL) first"
    )


def _revisions() -> set[str]:
    """Every revision this version of Docent knows."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config(None))  # type: ignore[arg-type]
    return {script.revision for script in scripts.walk_revisions()}


def open_database(settings: Settings) -> Engine:
    """An engine on the configured database, after checking its schema (SchemaError when it is old)."""
    engine = make_engine(settings)
    try:
        check_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
