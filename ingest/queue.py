"""Server mode's job queue: procrastinate on the same PostgreSQL as the `ingest_jobs` table.

A replica records a job (ingest/jobs.py) and defers one procrastinate job naming it; `docent worker`
processes run those with the Docent services opened once. Procrastinate's workers send heartbeats, so a job
whose worker was killed (SIGKILL, a lost machine) is found stalled and retried by another worker, where
`run_job` re-runs its sources (the pipeline converges: no duplicate, no missing chunk). Procrastinate's own
schema is applied by `docent db upgrade` (`apply_queue_schema`).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import TYPE_CHECKING

from core.settings import Settings
from ingest.jobs import IngestJobs, JobTable, run_job

if TYPE_CHECKING:
    import procrastinate
    from sqlalchemy import Engine

    from ingest.pipeline import Ingestor

log = logging.getLogger(__name__)

QUEUE = "ingest"
TASK = "docent.ingest"
MAX_ATTEMPTS = 5
"""Tries of one job whose run raised (the job table unreachable); a killed worker's job is retried apart."""
HEARTBEAT_S = 2.0
"""How often a worker tells PostgreSQL it is alive."""
STALLED_AFTER_S = 10.0
"""A worker silent this long is dead: its jobs are retried by the others."""


def _conninfo(settings: Settings) -> str:
    if not settings.server_mode or settings.database_url is None:
        raise ValueError(
            "the ingest job queue needs PostgreSQL: set DOCENT_DATABASE_URL=postgresql://user@host:port/db"
        )
    return settings.database_url


def make_queue_app(settings: Settings) -> procrastinate.App:
    """A procrastinate app on the configured PostgreSQL (not opened)."""
    import procrastinate

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=_conninfo(settings)))


async def apply_queue_schema(settings: Settings) -> bool:
    """Create procrastinate's tables and functions unless they exist (`docent db upgrade` calls it; safe to
    run again); returns whether it created them."""
    app = make_queue_app(settings)
    async with app.open_async():
        found = await app.connector.execute_query_one_async(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS found"
        )
        if found["found"]:
            return False
        await app.schema_manager.apply_schema_async()
        return True


class JobQueue:
    """A replica's handle on the queue: defer a recorded job for the workers."""

    def __init__(self, app: procrastinate.App) -> None:
        self._app = app

    async def enqueue(self, job_id: str) -> None:
        """Queue the job (its row must already be in `ingest_jobs`)."""
        await self._app.configure_task(TASK, queue=QUEUE).defer_async(job_id=job_id)


async def open_ingest_jobs(settings: Settings, database: Engine, ingestor: Ingestor) -> IngestJobs:
    """A server's jobs, closed by `IngestJobs.aclose`: embedded, run on its own threads (and the ones it left
    unfinished when it last stopped run again); server mode, queued for `docent worker`."""
    table = JobTable.from_settings(database, settings)
    if not settings.server_mode:
        jobs = IngestJobs(table, ingestor, max_running=settings.ingest_max_running_jobs)
        if resumed := await asyncio.to_thread(jobs.resume):
            log.info("resuming %d ingest jobs left unfinished", resumed)
        return jobs
    app = make_queue_app(settings)
    await app.open_async()
    queue = JobQueue(app)
    return IngestJobs(table, enqueue=queue.enqueue, on_close=app.close_async)


async def run_worker(
    settings: Settings,
    table: JobTable,
    ingestor: Ingestor,
    *,
    concurrency: int | None = None,
    stalled_after_s: float = STALLED_AFTER_S,
) -> None:
    """Run queued ingest jobs until SIGINT or SIGTERM (procrastinate lets the running jobs finish first).
    Jobs run on threads of their own, never the event loop, which keeps sending the worker's heartbeat;
    a sweep puts the jobs of workers that stopped sending theirs back in the queue."""
    import procrastinate

    app = make_queue_app(settings)
    slots = concurrency or settings.ingest_max_running_jobs
    pool = ThreadPoolExecutor(slots, thread_name_prefix="ingest-job")

    @app.task(
        name=TASK,
        queue=QUEUE,
        retry=procrastinate.RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=2),
        pass_context=True,
    )
    async def ingest(context: procrastinate.JobContext, job_id: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(pool, run_job, table, job_id, ingestor)
        except Exception as exc:
            if context.job.attempts + 1 >= MAX_ATTEMPTS:  # no retry left: free the collection
                with suppress(Exception):
                    error = f"the job table failed: {type(exc).__name__}: {exc}"
                    await loop.run_in_executor(pool, lambda: table.finish(job_id, "failed", error=error))
            raise

    async def retry_stalled() -> None:
        """Jobs of workers that stopped sending heartbeats go back to the queue, for us or another."""
        while True:
            with suppress(Exception):  # the database may be down for a while: try again next round
                for job in await app.job_manager.get_stalled_jobs(
                    queue=QUEUE, seconds_since_heartbeat=stalled_after_s
                ):
                    log.warning("ingest job %s: its worker died; retrying it", job.task_kwargs.get("job_id"))
                    await app.job_manager.retry_job(job)
            await asyncio.sleep(stalled_after_s / 2)

    try:
        async with app.open_async():
            sweeper = asyncio.create_task(retry_stalled())
            try:
                await app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=slots,
                    update_heartbeat_interval=HEARTBEAT_S,
                    stalled_worker_timeout=stalled_after_s,
                    delete_jobs="successful",  # the job's own row keeps its story
                    install_signal_handlers=True,
                )
            finally:
                sweeper.cancel()
                with suppress(asyncio.CancelledError):
                    await sweeper
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
