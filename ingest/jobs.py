"""Background ingestion jobs for the HTTP API, isolated from the query path: they run on a bounded pool of
their own (never the event loop's default executor, which serves requests), at most one per collection, with a
capped queue, cancellation between sources, and a registry that forgets finished jobs after a while."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from core.settings import Settings
from core.storage.sources import utc_now
from ingest.fetch import FetchPolicy
from ingest.pipeline import Ingestor, IngestSummary, SourceResult

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[JobStatus] = frozenset({"done", "failed", "cancelled"})
T = TypeVar("T")


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


@dataclass
class IngestJob:
    """One ingestion run started over HTTP, as its progress is reported."""

    id: str
    collection: str
    items: list[str]
    status: JobStatus = "queued"
    done: int = 0
    total: int | None = None
    current: str | None = None
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    results: list[SourceResult] = field(default_factory=list)
    summary: IngestSummary | None = None
    error: str | None = None
    owner: str = ""
    cancel: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    """Set by `IngestJobs.cancel`; the pipeline looks at it between sources."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view; `results` lists each finished source with its status (and reason)."""
        summary = self.summary.to_dict() if self.summary is not None else None
        if summary is not None:
            summary.pop("results")
        return {
            "id": self.id,
            "collection": self.collection,
            "status": self.status,
            "cancel_requested": self.cancel.is_set(),
            "done": self.done,
            "total": self.total,
            "current": self.current,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "results": [asdict(r) for r in (self.summary.results if self.summary else list(self.results))],
            "summary": summary,
        }


class IngestJobs:
    """The process's ingest jobs and the threads they run on (opened once by the server's lifespan, closed
    at its end).

    `claim` takes the collection (or refuses: one unfinished job per collection, and at most `max_running`
    running plus `max_queued` queued jobs in all); `start` hands the job to the pool, where it waits as
    `queued` until one of the `max_running` threads is free. Finished jobs stay readable for `ttl_s`, and at
    most `kept` of them.
    """

    def __init__(
        self,
        *,
        max_running: int = 2,
        max_queued: int = 8,
        ttl_s: float = 3600.0,
        kept: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_running, self._max_queued = max_running, max_queued
        self._ttl_s, self._kept, self._clock = ttl_s, kept, clock
        self._pool = ThreadPoolExecutor(max_running, thread_name_prefix="ingest-job")
        self._files = ThreadPoolExecutor(1, thread_name_prefix="ingest-files")
        self._lock = threading.Lock()
        self._jobs: dict[str, IngestJob] = {}
        self._collections: dict[str, str] = {}  # collection -> its unfinished job's id
        self._futures: dict[str, Future[None]] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()  # job id -> when it finished, oldest first

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestJobs:
        """Jobs capped and kept as the settings say (DOCENT_INGEST_*)."""
        return cls(
            max_running=settings.ingest_max_running_jobs,
            max_queued=settings.ingest_max_queued_jobs,
            ttl_s=settings.ingest_job_ttl_s,
            kept=settings.ingest_jobs_kept,
        )

    def claim(self, collection: str, items: list[str], owner: str = "") -> IngestJob:
        """Register a queued job on a collection for `owner` (who alone may read or cancel it). Raises
        JobConflictError if the collection has an unfinished job, JobQueueFullError at the caps."""
        with self._lock:
            self._prune()
            if (other := self._collections.get(collection)) is not None:
                raise JobConflictError(other, self._jobs[other].owner)
            if len(self._collections) >= self._max_running + self._max_queued:
                running = sum(1 for i in self._collections.values() if self._jobs[i].status == "running")
                raise JobQueueFullError(running, len(self._collections) - running)
            job = IngestJob(id=uuid.uuid4().hex, collection=collection, items=items, owner=owner)
            self._jobs[job.id] = job
            self._collections[collection] = job.id
            return job

    def prepare(self, work: Callable[[], T]) -> Future[T]:
        """Run a job's blocking preparation (saving its uploads) on the ingest side, off the query path."""
        return self._files.submit(work)

    def start(self, job: IngestJob, ingestor: Ingestor, cleanup: Callable[[], None] | None = None) -> None:
        """Queue a claimed job on the ingest pool; it runs when a thread is free (unless cancelled first)."""
        with self._lock:
            if job.status in FINISHED:  # cancelled while its uploads were being saved
                return
            self._futures[job.id] = self._pool.submit(self._execute, job, ingestor, cleanup)

    def get(self, job_id: str) -> IngestJob | None:
        """A job by id; None once it has been forgotten."""
        with self._lock:
            self._prune()
            return self._jobs.get(job_id)

    def running(self, collection: str) -> str | None:
        """The id of the job queued or running on a collection, if any."""
        with self._lock:
            return self._collections.get(collection)

    def cancel(self, job: IngestJob) -> None:
        """Ask a job to stop: a queued one ends at once; a running one stops before its next source (what it
        committed stays). A finished job is left as it is."""
        with self._lock:
            if job.status in FINISHED:
                return
            job.cancel.set()
            future = self._futures.get(job.id)
            if job.status == "queued" and (future is None or future.cancel()):
                self._finish(job, "cancelled")

    def fail(self, job: IngestJob, error: str) -> None:
        """End a claimed job that could not start."""
        with self._lock:
            job.error = error
            self._finish(job, "failed")

    def close(self, timeout: float = 10.0) -> int:
        """Cancel every job and wait up to `timeout` seconds for the running ones to stop; returns how many
        are still running (a fetch in progress is not interrupted: they stop after it)."""
        with self._lock:
            for job_id in list(self._collections.values()):
                job = self._jobs[job_id]
                job.cancel.set()
                future = self._futures.get(job_id)
                if job.status == "queued" and (future is None or future.cancel()):
                    self._finish(job, "cancelled")
            running = list(self._futures.values())
        self._files.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return len(wait(running, timeout).not_done)

    def _execute(self, job: IngestJob, ingestor: Ingestor, cleanup: Callable[[], None] | None) -> None:
        """Run a job to the end on an ingest thread; never raises."""
        stopped = threading.Event()  # the pipeline saw the cancel and stopped early

        def cancelled() -> bool:
            if job.cancel.is_set():
                stopped.set()
                return True
            return False

        def progress(source: str, done: int, total: int) -> None:
            job.current, job.done, job.total = source, done, total

        try:
            with self._lock:
                if job.status in FINISHED:
                    return
                if job.cancel.is_set():  # cancelled after a thread took it, before it began
                    self._finish(job, "cancelled")
                    return
                job.status = "running"
            status: JobStatus = "failed"
            try:
                job.summary = ingestor.run(
                    job.items,
                    collection=job.collection,
                    on_progress=progress,
                    on_result=job.results.append,
                    cancelled=cancelled,
                    fetch_policy=FetchPolicy.strict(ingestor.settings),  # URLs from HTTP callers
                )
                status = "cancelled" if stopped.is_set() else "done"
            except Exception as exc:  # a store or collection error: the job failed as a whole
                job.error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._finish(job, status)
        finally:
            if cleanup is not None:
                cleanup()

    def _finish(self, job: IngestJob, status: JobStatus) -> None:
        """Mark a job finished and free its collection (the lock is held)."""
        job.status, job.current, job.finished_at = status, None, utc_now()
        if self._collections.get(job.collection) == job.id:
            del self._collections[job.collection]
        self._futures.pop(job.id, None)
        self._finished[job.id] = self._clock()
        self._prune()

    def _prune(self) -> None:
        """Forget finished jobs older than the TTL, and the oldest beyond `kept` (the lock is held)."""
        expired = self._clock() - self._ttl_s
        while self._finished:
            job_id, finished = next(iter(self._finished.items()))
            if finished > expired and len(self._finished) <= self._kept:
                break
            del self._finished[job_id]
            self._jobs.pop(job_id, None)
