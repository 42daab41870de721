"""Ingestion jobs as rows of the relational database (`ingest_jobs`, their uploads in `ingest_uploads`), so
that every replica reads the same status and any worker can run (or re-run) a job.

`JobTable` claims, reads, cancels and finishes jobs: one unfinished job per collection (a unique index
the database enforces, whichever replica claims), and at most `max_running + max_queued` unfinished jobs
in all. `run_job` executes one claimed job with an Ingestor, wherever it runs: the embedded default runs it
on `IngestJobs`' own bounded pool (never the event loop's default executor, which serves requests), server
mode on `docent worker` (ingest/queue.py). A job re-run after its worker died redoes its sources: the
pipeline skips what was committed and converges on what was half written (chunk ids are deterministic,
writes are upserts), so a retried job ends with no duplicate and no missing chunk.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.settings import Settings
from core.storage.models import ingest_jobs, ingest_uploads
from core.storage.sources import shown_uri
from ingest.fetch import FetchPolicy
from ingest.pipeline import Ingestor, SourceResult

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[JobStatus] = frozenset({"done", "failed", "cancelled"})
UNFINISHED = ("queued", "running")
UPLOAD = "upload:"
"""Items of this prefix name an uploaded file (its bytes in `ingest_uploads`), placed by the worker."""
T = TypeVar("T")
Clock = Callable[[], datetime]


class JobConflictError(RuntimeError):
    """A job is already queued or running on the collection. The message names neither the job nor the
    collection (another tenant may own it); `job_id` and `owner` let the caller tell the job's owner alone."""

    def __init__(self, job_id: str, owner: str) -> None:
        super().__init__("an ingest job is already running on this collection")
        self.job_id = job_id
        self.owner = owner


class JobQueueFullError(RuntimeError):
    """Every running slot and every queued slot is taken: try again later."""

    def __init__(self, running: int, queued: int) -> None:
        super().__init__(
            f"the ingest queue is full ({running} jobs running, {queued} queued); try again later, or raise"
            " DOCENT_INGEST_MAX_QUEUED_JOBS"
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    """ISO-8601 UTC to the millisecond: sorts as it reads, and a TTL of seconds is kept exactly."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class IngestJob:
    """One ingestion job as its row says at the moment it was read."""

    id: str
    collection: str
    owner: str
    items: list[str]
    status: JobStatus = "queued"
    cancel_requested: bool = False
    done: int = 0
    total: int | None = None
    current: str | None = None
    attempts: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    error: str | None = None
    started_at: str = ""
    updated_at: str = ""
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled: nothing will change it any more."""
        return self.status in FINISHED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view; `results` lists each finished source with its status (and reason)."""
        return {
            "id": self.id,
            "collection": self.collection,
            "status": self.status,
            "cancel_requested": self.cancel_requested,
            "done": self.done,
            "total": self.total,
            "current": self.current,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "results": [dict(r) for r in self.results],
            "summary": dict(self.summary) if self.summary is not None else None,
        }


def _job(row: Any) -> IngestJob:
    return IngestJob(
        id=row.id,
        collection=row.collection,
        owner=row.owner,
        items=json.loads(row.items),
        status=row.status,
        cancel_requested=bool(row.cancel_requested),
        done=row.done,
        total=row.total,
        current=row.current,
        attempts=row.attempts,
        results=json.loads(row.results),
        summary=json.loads(row.summary) if row.summary is not None else None,
        error=row.error,
        started_at=row.started_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
    )


class JobTable:
    """The `ingest_jobs` rows on the process's engine: what every replica and worker reads and writes.

    Finished jobs stay readable for `ttl_s`, and at most `kept` of them (older ones are deleted when the
    next job is claimed).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_running: int = 2,
        max_queued: int = 8,
        ttl_s: float = 3600.0,
        kept: int = 1000,
        clock: Clock = _now,
    ) -> None:
        self._engine = engine
        self._max_running, self._max_queued = max_running, max_queued
        self._ttl, self._kept, self._clock = timedelta(seconds=ttl_s), kept, clock
        self._lock = threading.Lock()  # claims of this process; PostgreSQL's advisory lock spans processes

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings) -> JobTable:
        """Jobs capped and kept as the settings say (DOCENT_INGEST_*)."""
        return cls(
            engine,
            max_running=settings.ingest_max_running_jobs,
            max_queued=settings.ingest_max_queued_jobs,
            ttl_s=settings.ingest_job_ttl_s,
            kept=settings.ingest_jobs_kept,
        )

    @contextmanager
    def _claiming(self) -> Iterator[Connection]:
        """A transaction in which claims are serialised, across replicas too (on PostgreSQL)."""
        with self._lock, self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('docent.ingest_jobs'))"))
            yield connection

    def claim(
        self,
        collection: str,
        items: Sequence[str],
        owner: str = "",
        uploads: Sequence[tuple[str, bytes]] = (),
    ) -> IngestJob:
        """Record a queued job on a collection for `owner` (who alone may read or cancel it), with its
        uploaded files. Raises JobConflictError if the collection has an unfinished job, JobQueueFullError
        at the caps."""
        files = dict(uploads)  # one file per name: a later one of the same name replaces it, as on disk
        stamp = _stamp(self._clock())
        job_id = uuid.uuid4().hex
        row = {
            "id": job_id,
            "collection": collection,
            "owner": owner,
            "items": json.dumps([*items, *(UPLOAD + name for name in files)]),
            "status": "queued",
            "started_at": stamp,
            "updated_at": stamp,
        }
        try:
            with self._claiming() as connection:
                self._prune(connection)
                self._refuse_if_busy(connection, collection)
                connection.execute(insert(ingest_jobs).values(**row))
                if files:
                    connection.execute(
                        insert(ingest_uploads),
                        [{"job_id": job_id, "name": name, "data": data} for name, data in files.items()],
                    )
        except IntegrityError:  # claimed by another process between our check and our insert
            with self._engine.connect() as connection:
                self._refuse_if_busy(connection, collection)
            raise
        claimed = self.get(job_id)
        assert claimed is not None
        return claimed

    def _refuse_if_busy(self, connection: Connection, collection: str) -> None:
        unfinished = connection.execute(
            select(
                ingest_jobs.c.collection, ingest_jobs.c.id, ingest_jobs.c.owner, ingest_jobs.c.status
            ).where(ingest_jobs.c.status.in_(UNFINISHED))
        ).all()
        for row in unfinished:
            if row.collection == collection:
                raise JobConflictError(row.id, row.owner)
        if len(unfinished) >= self._max_running + self._max_queued:
            running = sum(1 for row in unfinished if row.status == "running")
            raise JobQueueFullError(running, len(unfinished) - running)

    def _prune(self, connection: Connection) -> None:
        """Delete finished jobs older than the TTL, and the oldest beyond `kept`."""
        expired = _stamp(self._clock() - self._ttl)
        finished = ingest_jobs.c.finished_at
        connection.execute(delete(ingest_jobs).where(finished.is_not(None), finished <= expired))
        kept = (
            select(ingest_jobs.c.id)
            .where(finished.is_not(None))
            .order_by(finished.desc())
            .limit(self._kept)
            .scalar_subquery()
        )
        connection.execute(delete(ingest_jobs).where(finished.is_not(None), ingest_jobs.c.id.not_in(kept)))

    def get(self, job_id: str) -> IngestJob | None:
        """A job by id; None once it has been forgotten (finished longer than the TTL ago)."""
        with self._engine.connect() as connection:
            row = connection.execute(select(ingest_jobs).where(ingest_jobs.c.id == job_id)).first()
        if row is None:
            return None
        if row.finished_at is not None and row.finished_at <= _stamp(self._clock() - self._ttl):
            return None
        return _job(row)

    def running(self, collection: str) -> str | None:
        """The id of the job queued or running on a collection, if any."""
        with self._engine.connect() as connection:
            return connection.execute(
                select(ingest_jobs.c.id).where(
                    ingest_jobs.c.collection == collection, ingest_jobs.c.status.in_(UNFINISHED)
                )
            ).scalar()

    def unfinished(self) -> list[IngestJob]:
        """Every queued or running job, oldest first."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(ingest_jobs)
                .where(ingest_jobs.c.status.in_(UNFINISHED))
                .order_by(ingest_jobs.c.started_at)
            ).all()
        return [_job(row) for row in rows]

    def request_cancel(self, job_id: str) -> IngestJob | None:
        """Ask a job to stop: a queued one ends at once; a running one stops before its next source (what it
        committed stays). A finished job is left as it is."""
        stamp = _stamp(self._clock())
        with self._engine.begin() as connection:
            job = ingest_jobs.c
            ended = connection.execute(
                update(ingest_jobs)
                .where(job.id == job_id, job.status == "queued")
                .values(status="cancelled", cancel_requested=True, updated_at=stamp, finished_at=stamp)
            ).rowcount
            if ended:
                connection.execute(delete(ingest_uploads).where(ingest_uploads.c.job_id == job_id))
            connection.execute(
                update(ingest_jobs)
                .where(job.id == job_id, job.status == "running")
                .values(cancel_requested=True, updated_at=stamp)
            )
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether DELETE /ingest/{id} was called on the job (the pipeline asks between sources)."""
        with self._engine.connect() as connection:
            return bool(
                connection.execute(
                    select(ingest_jobs.c.cancel_requested).where(ingest_jobs.c.id == job_id)
                ).scalar()
            )

    def begin(self, job_id: str) -> IngestJob | None:
        """Take a queued job, or one whose earlier attempt died while running, for a new attempt (its
        progress starts again); None if it is finished or unknown. A job cancelled before it began ends."""
        stamp = _stamp(self._clock())
        with self._engine.begin() as connection:
            job = ingest_jobs.c
            taken = connection.execute(
                update(ingest_jobs)
                .where(job.id == job_id, job.status.in_(UNFINISHED))
                .values(
                    status="running",
                    attempts=job.attempts + 1,
                    done=0,
                    current=None,
                    results="[]",
                    updated_at=stamp,
                )
            ).rowcount
        if not taken:
            return None
        begun = self.get(job_id)
        if begun is not None and begun.cancel_requested:
            self.finish(job_id, "cancelled")
            return None
        return begun

    def requeue(self, job_id: str) -> None:
        """Put a running job back in the queue (its process is stopping; the next start runs it again)."""
        with self._engine.begin() as connection:
            connection.execute(
                update(ingest_jobs)
                .where(ingest_jobs.c.id == job_id, ingest_jobs.c.status == "running")
                .values(status="queued", current=None, updated_at=_stamp(self._clock()))
            )

    def progress(
        self, job_id: str, *, done: int, total: int, current: str, results: Sequence[dict[str, Any]]
    ) -> None:
        """Record a running job's progress after a source."""
        with self._engine.begin() as connection:
            connection.execute(
                update(ingest_jobs)
                .where(ingest_jobs.c.id == job_id, ingest_jobs.c.status == "running")
                .values(
                    done=done,
                    total=total,
                    current=current,
                    results=json.dumps(list(results)),
                    updated_at=_stamp(self._clock()),
                )
            )

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        results: Sequence[dict[str, Any]] | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """End an unfinished job and drop its uploads; a finished job is left as it is."""
        stamp = _stamp(self._clock())
        values: dict[str, Any] = {
            "status": status,
            "current": None,
            "updated_at": stamp,
            "finished_at": stamp,
            "error": error,
        }
        if results is not None:
            values["results"] = json.dumps(list(results))
        if summary is not None:
            values["summary"] = json.dumps(summary)
        with self._engine.begin() as connection:
            ended = connection.execute(
                update(ingest_jobs)
                .where(ingest_jobs.c.id == job_id, ingest_jobs.c.status.in_(UNFINISHED))
                .values(**values)
            ).rowcount
            if ended:
                connection.execute(delete(ingest_uploads).where(ingest_uploads.c.job_id == job_id))

    def uploads(self, job_id: str) -> list[tuple[str, bytes]]:
        """The files uploaded with a job, by name."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(ingest_uploads.c.name, ingest_uploads.c.data)
                .where(ingest_uploads.c.job_id == job_id)
                .order_by(ingest_uploads.c.name)
            ).all()
        return [(row.name, bytes(row.data)) for row in rows]


def uploads_folder(settings: Settings, collection: str) -> Path:
    """Where a worker places a job's uploads: `<data_dir>/uploads/<stored collection>/`. A file's path is
    its source URI, so sending the same name again replaces that source (or skips it, unchanged)."""
    return settings.data_dir / "uploads" / collection


def _place_uploads(table: JobTable, job: IngestJob, folder: Path) -> list[str]:
    """The job's items with each upload written to `folder` and named by its path."""
    files = dict(table.uploads(job.id))
    items: list[str] = []
    for item in job.items:
        if not item.startswith(UPLOAD):
            items.append(item)
            continue
        name = Path(item.removeprefix(UPLOAD)).name  # a bare file name (the route made it one), never a path
        if name in files:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(files[name])
        items.append(str((folder / name).resolve()))
    return items


def run_job(table: JobTable, job_id: str, ingestor: Ingestor, stop: threading.Event | None = None) -> None:
    """Run (or re-run) one job to its end with `ingestor`, its progress written to the table as each
    source finishes. `stop` set: this process is shutting down, the job goes back to the queue at its next
    source. Store errors end the job as failed; database errors propagate, for the caller to run the job
    again (it converges: see the module's docstring)."""
    job = table.begin(job_id)
    if job is None:  # finished, cancelled before it began, or forgotten
        return
    settings = ingestor.settings
    shown: Callable[[str], str] = lambda source: shown_uri(source, settings.data_dir)  # noqa: E731
    results: list[dict[str, Any]] = []
    outcome: dict[str, bool] = {"cancelled": False, "stopping": False}

    def cancelled() -> bool:
        if stop is not None and stop.is_set():
            outcome["stopping"] = True
            return True
        if table.cancel_requested(job_id):
            outcome["cancelled"] = True
            return True
        return False

    def on_result(result: SourceResult) -> None:
        results.append(_shown_result(result, shown))

    def on_progress(source: str, done: int, total: int) -> None:
        table.progress(job_id, done=done, total=total, current=shown(source), results=results)

    try:
        items = _place_uploads(table, job, uploads_folder(settings, job.collection))
        ran = ingestor.run(
            items,
            collection=job.collection,
            on_progress=on_progress,
            on_result=on_result,
            cancelled=cancelled,
            fetch_policy=FetchPolicy.strict(settings),  # URLs from HTTP callers
        )
    except SQLAlchemyError:  # the database (jobs, records, keyword rows) is down: run the job again later
        raise
    except Exception as exc:  # a store or collection error: the job failed as a whole
        log.warning("ingest job %s failed: %s: %s", job_id, type(exc).__name__, exc)
        table.finish(job_id, "failed", results=results, error=f"{type(exc).__name__}: {exc}")
        return
    if outcome["stopping"] and not outcome["cancelled"]:
        table.requeue(job_id)
        return
    summary = ran.to_dict()
    summary.pop("results")
    for key in ("failures", "warnings", "ignored"):
        summary[key] = [{**problem, "source": shown(problem["source"])} for problem in summary[key]]
    everything = [_shown_result(r, shown) for r in ran.results]
    status: JobStatus = "cancelled" if outcome["cancelled"] else "failed" if ran.all_failed else "done"
    error = f"every source failed ({len(ran.failures)})" if status == "failed" else None
    table.finish(job_id, status, results=everything, summary=summary, error=error)


def _shown_result(result: SourceResult, shown: Callable[[str], str]) -> dict[str, Any]:
    """A source's result as HTTP callers see it: sources (its own, and the one a duplicate matches) by
    `shown_uri`, never by a path on the server's disk."""
    out = {**asdict(result), "source": shown(result.source)}
    if result.same_as is not None:
        out["same_as"] = shown(result.same_as)
        out["reason"] = f"same content as {out['same_as']}"
    return out


class IngestJobs:
    """A process's front on the jobs (opened once by the server's lifespan, closed at its end): the table
    every replica shares, and where a claimed job runs.

    Embedded (`ingestor` given): on this process's own bounded threads, where a job waits as `queued` until
    one of the `max_running` threads is free; jobs left unfinished when the process last stopped are run
    again by `resume`. Server mode (`enqueue` given): handed to the queue that `docent worker` processes run
    (ingest/queue.py).
    """

    def __init__(
        self,
        table: JobTable,
        ingestor: Ingestor | None = None,
        *,
        max_running: int = 2,
        enqueue: Callable[[str], Awaitable[None]] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`on_close`: what `aclose` ends after the threads (the queue's connection pool)."""
        if (ingestor is None) == (enqueue is None):
            raise ValueError("give either an ingestor (run jobs here) or enqueue (run them on workers)")
        self.table = table
        self._ingestor = ingestor
        self._enqueue = enqueue
        self._on_close = on_close
        self._pool = ThreadPoolExecutor(max_running, thread_name_prefix="ingest-job")
        self._files = ThreadPoolExecutor(1, thread_name_prefix="ingest-files")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._futures: dict[str, Future[None]] = {}

    def prepare(self, work: Callable[[], T]) -> Future[T]:
        """Run a job's blocking preparation (claiming it with its uploads) on the ingest side, off the
        query path."""
        return self._files.submit(work)

    def running(self, collection: str) -> str | None:
        """The id of the job queued or running on a collection, if any."""
        return self.table.running(collection)

    async def submit(self, job: IngestJob) -> None:
        """Hand a claimed job to where it runs: this process's pool, or the workers' queue."""
        if self._enqueue is not None:
            await self._enqueue(job.id)
        else:
            self.start(job)

    def start(self, job: IngestJob) -> None:
        """Queue a claimed job on this process's ingest pool; it runs when a thread is free (unless
        cancelled first)."""
        with self._lock:
            if self._stop.is_set() or job.id in self._futures or self._ingestor is None:
                return
            future = self._pool.submit(self._execute, job.id)
            self._futures[job.id] = future
        future.add_done_callback(lambda _: self._forget(job.id))

    def resume(self) -> int:
        """Start every job left queued or running by a process that stopped (embedded: one server per data
        dir, so they are this one's); returns how many."""
        if self._ingestor is None:
            return 0
        jobs = self.table.unfinished()
        for job in jobs:
            self.start(job)
        return len(jobs)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._futures.pop(job_id, None)

    def _execute(self, job_id: str) -> None:
        """Run a job on an ingest thread; never raises."""
        if self._stop.is_set() or self._ingestor is None:
            return
        try:
            run_job(self.table, job_id, self._ingestor, self._stop)
        except Exception as exc:  # no queue retries here: end the job, freeing its collection, if we can
            log.exception("ingest job %s: the database failed", job_id)
            with suppress(Exception):
                self.table.finish(job_id, "failed", error=f"the database failed: {type(exc).__name__}: {exc}")

    def close(self, timeout: float = 10.0) -> int:
        """Stop taking jobs and wait up to `timeout` seconds for the running ones to reach their next source
        (a fetch in progress is not interrupted); they stay queued in the table, for `resume` on the next
        start. Returns how many were still running."""
        self._stop.set()
        self._files.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)  # the jobs not begun stay queued
        with self._lock:
            running = [future for future in self._futures.values() if not future.cancelled()]
        return len(wait(running, timeout).not_done)

    async def aclose(self, wait_s: float = 10.0) -> int:
        """`close` off the event loop, then close the queue; returns how many jobs were still running."""
        import asyncio

        stuck = await asyncio.to_thread(self.close, wait_s)
        if self._on_close is not None:
            await self._on_close()
        return stuck
