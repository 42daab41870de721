"""Alembic's entry point: migrations run on the engine Docent passes in (`core.storage.db.upgrade`)."""

from __future__ import annotations

from alembic import context

from core.storage.models import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
