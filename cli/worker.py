"""`docent worker`: run the ingest jobs that replicas queue in server mode (ingest/queue.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import fail


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(help="Jobs run at once (default: DOCENT_INGEST_MAX_RUNNING_JOBS).", min=1, max=64),
    ] = None,
) -> None:
    """Run queued ingest jobs (server mode: DOCENT_DATABASE_URL on PostgreSQL) until SIGINT or SIGTERM. The
    embedder, Chroma and the keyword index are opened once; a job whose worker died is retried here."""
    import asyncio
    import logging
    import logging.config

    from core.log_config import logging_config
    from core.services import Services
    from core.settings import get_settings
    from core.storage.db import SchemaError
    from ingest.jobs import JobTable
    from ingest.pipeline import Ingestor
    from ingest.queue import run_worker

    settings = get_settings()
    if not settings.server_mode:
        fail(
            "docent worker runs the jobs queued on PostgreSQL: set DOCENT_DATABASE_URL (in the embedded mode,"
            " `docent serve` runs ingest jobs itself)"
        )
    logging.config.dictConfig(logging_config(settings))
    services = Services(settings)
    try:
        try:
            table = JobTable.from_settings(services.database, settings)
        except SchemaError as exc:
            fail(exc)
        services.embedder.load()
        ingestor = Ingestor(settings, services.embedder, services.store)
        _ = services.store.vectors  # Chroma reachable now, not at the first job
        logging.getLogger("docent").info("docent worker: waiting for ingest jobs")
        asyncio.run(run_worker(settings, table, ingestor, concurrency=concurrency))
    finally:
        services.close()
