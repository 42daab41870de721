"""`docent db`: bring the database to the schema this version needs, or say where it stands.

`upgrade` applies the Alembic migrations of the relational tables and, in server mode (PostgreSQL), creates
the tables of LangGraph's PostgreSQL checkpointer and of the ingest job queue. Run it once per release
before starting replicas; it is safe to run again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import fail

if TYPE_CHECKING:
    from core.settings import Settings

db_app = typer.Typer(help="Create or upgrade the database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision (default: the newest).")] = "head",
) -> None:
    """Apply every pending migration (relational tables; checkpoints and job queue in server mode)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.storage.db import make_engine
    from core.storage.db import upgrade as upgrade_schema

    settings = _settings()
    engine = make_engine(settings)
    where = engine.url.render_as_string(hide_password=True)
    try:
        before, after = upgrade_schema(engine, revision)
        if settings.server_mode:
            asyncio.run(_server_mode_schemas(settings))
    except (SQLAlchemyError, OSError) as exc:
        fail(f"cannot upgrade {where}: {exc}", code=1)
    finally:
        engine.dispose()
    if before == after:
        typer.echo(f"{where} is at revision {after}: nothing to do.")
    else:
        typer.echo(f"{where}: upgraded from {before or 'an empty database'} to revision {after}.")
    if settings.server_mode:
        typer.echo("Checkpoint and job-queue tables are in place.")


async def _server_mode_schemas(settings: Settings) -> None:
    """The PostgreSQL checkpointer's tables and the job queue's schema (both idempotent)."""
    from core.storage.checkpoints import setup_checkpoints
    from ingest.queue import apply_queue_schema

    await setup_checkpoints(settings)
    await apply_queue_schema(settings)


@db_app.command("current")
def current() -> None:
    """Print the database's revision and the one this version needs (exit 1 when they differ)."""
    from core.storage.db import current_revision, head_revision, make_engine

    engine = make_engine(_settings())
    try:
        now, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    typer.echo(f"database: {now or 'none'}; needed: {head}")
    if now != head:
        raise typer.Exit(1)


def _settings() -> Settings:
    """The settings, or a one-line error naming what is wrong with them."""
    from core.settings import get_settings

    try:
        return get_settings()
    except ValueError as exc:
        fail(f"invalid settings: {exc}")
