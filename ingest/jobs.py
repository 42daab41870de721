"""Background ingestion jobs for the HTTP API: one running job per collection, progress and results."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.storage.sources import utc_now
from ingest.pipeline import Ingestor, IngestSummary, SourceResult

JobStatus = Literal["running", "done", "failed"]


class JobConflictError(RuntimeError):
    """A job is already running on the collection; `job_id` names it."""

    def __init__(self, collection: str, job_id: str) -> None:
        super().__init__(f"an ingest job is already running on collection {collection!r}: {job_id}")
        self.job_id = job_id


@dataclass
class IngestJob:
    """One ingestion run started over HTTP, as its progress is reported."""

    id: str
    collection: str
    items: list[str]
    status: JobStatus = "running"
    done: int = 0
    total: int | None = None
    current: str | None = None
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    results: list[SourceResult] = field(default_factory=list)
    summary: IngestSummary | None = None
    error: str | None = None
    owner: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view; `results` lists each finished source with its status (and reason)."""
        summary = self.summary.to_dict() if self.summary is not None else None
        if summary is not None:
            summary.pop("results")
        return {
            "id": self.id,
            "collection": self.collection,
            "status": self.status,
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
    """The process's ingest jobs. `claim` takes the collection; the caller runs `run` in a worker thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, IngestJob] = {}
        self._running: dict[str, str] = {}
        self.background: set[Any] = set()  # the callers' handles on running jobs (kept from the GC)

    def claim(self, collection: str, items: list[str], owner: str = "") -> IngestJob:
        """Register a job on a collection for `owner` (who alone may read its progress), or raise
        JobConflictError naming the one already running."""
        with self._lock:
            if (running := self._running.get(collection)) is not None:
                raise JobConflictError(collection, running)
            job = IngestJob(id=uuid.uuid4().hex, collection=collection, items=items, owner=owner)
            self._jobs[job.id] = job
            self._running[collection] = job.id
            return job

    def running(self, collection: str) -> str | None:
        """The id of the job running on a collection, if any."""
        with self._lock:
            return self._running.get(collection)

    def get(self, job_id: str) -> IngestJob | None:
        """A job by id."""
        return self._jobs.get(job_id)

    def fail(self, job: IngestJob, error: str) -> None:
        """End a claimed job that could not start."""
        job.error, job.status, job.finished_at = error, "failed", utc_now()
        with self._lock:
            self._running.pop(job.collection, None)

    def run(self, job: IngestJob, ingestor: Ingestor, cleanup: Callable[[], None] | None = None) -> None:
        """Run a claimed job to the end (blocking: call it from a worker thread); never raises."""

        def progress(source: str, done: int, total: int) -> None:
            job.current, job.done, job.total = source, done, total

        try:
            job.summary = ingestor.run(
                job.items, collection=job.collection, on_progress=progress, on_result=job.results.append
            )
            job.status = "done"
        except Exception as exc:  # a store or collection error: the job failed as a whole
            job.error, job.status = f"{type(exc).__name__}: {exc}", "failed"
        finally:
            job.current, job.finished_at = None, utc_now()
            with self._lock:
                self._running.pop(job.collection, None)
            if cleanup is not None:
                cleanup()
