"""Ingest jobs as database rows, run on the embedded default's own bounded threads: a capped queue, one
unfinished job per collection (enforced by the database, across replicas on PostgreSQL), cancellation between
sources (what was committed stays), uploads carried in the database, and finished jobs forgotten after a TTL
or beyond a count."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.settings import Settings
from core.storage.db import make_engine, open_database, upgrade
from core.storage.models import ingest_jobs, ingest_uploads
from ingest.jobs import IngestJob, IngestJobs, JobConflictError, JobQueueFullError, JobTable, run_job
from ingest.pipeline import Ingestor, IngestSummary, SourceResult

NOTES = {
    "a-radiators.txt": "Bleed radiators every autumn so that trapped air does not keep them cold at the top.",
    "b-lofts.txt": "Lay loft insulation at least 270 mm deep, with the joists covered by a second layer.",
    "c-windows.txt": "Secondary glazing halves the heat lost through single-glazed sash windows.",
}


class GatedIngestor:
    """Stands in for the pipeline where only the job's life matters: each run waits for `gate`, records
    which thread it ran on and what it was given, then asks `cancelled` once before its one source."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gate = threading.Event()
        self.threads: list[str] = []
        self.items: list[list[str]] = []
        self.started = threading.Semaphore(0)

    def run(
        self, items: list[str], *, collection: str, cancelled: Callable[[], bool], **hooks: Any
    ) -> IngestSummary:
        self.threads.append(threading.current_thread().name)
        self.items.append(list(items))
        self.started.release()
        self.gate.wait(30)
        summary = IngestSummary(collection=collection)
        if cancelled():
            return summary
        hooks["on_result"](SourceResult(items[0], "added", 1))
        hooks["on_progress"](items[0], 1, 1)
        summary.results.append(SourceResult(items[0], "added", 1))
        return summary


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    opened = open_database(settings)
    yield opened
    opened.dispose()


@pytest.fixture
def gated(settings: Settings) -> Iterator[GatedIngestor]:
    ingestor = GatedIngestor(settings)
    yield ingestor
    ingestor.gate.set()


def _until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _jobs(engine: Engine, gated: GatedIngestor, max_running: int = 2, **caps: Any) -> IngestJobs:
    table = JobTable(engine, max_running=max_running, **caps)
    return IngestJobs(table, cast(Ingestor, gated), max_running=max_running)


def _start(jobs: IngestJobs, collection: str, owner: str = "alice") -> IngestJob:
    job = jobs.table.claim(collection, ["http://example.org/x"], owner=owner)
    jobs.start(job)
    return job


def _status(jobs: IngestJobs, job: IngestJob) -> str | None:
    found = jobs.table.get(job.id)
    return found.status if found is not None else None


def test_jobs_over_the_running_cap_wait_queued_on_the_ingest_threads_and_a_full_queue_is_refused(
    engine: Engine, gated: GatedIngestor
) -> None:
    jobs = _jobs(engine, gated, max_running=1, max_queued=1)
    first = _start(jobs, "one")
    assert gated.started.acquire(timeout=10)
    second = _start(jobs, "two")
    with pytest.raises(JobQueueFullError, match=r"1 jobs running, 1 queued"):
        jobs.table.claim("three", ["x"])
    assert (_status(jobs, first), _status(jobs, second)) == ("running", "queued")
    gated.gate.set()
    _until(lambda: _status(jobs, second) == "done")
    assert gated.threads and all(name.startswith("ingest-job") for name in gated.threads)
    jobs.close()


def test_a_busy_collection_refuses_without_naming_the_job_or_the_collection(
    engine: Engine, gated: GatedIngestor
) -> None:
    jobs = _jobs(engine, gated)
    first = _start(jobs, "tenant-a-private")
    with pytest.raises(JobConflictError) as refused:
        jobs.table.claim("tenant-a-private", ["y"], owner="mallory")
    assert str(refused.value) == "an ingest job is already running on this collection"
    assert (refused.value.job_id, refused.value.owner) == (first.id, "alice")  # for the route to filter
    jobs.close()


def test_the_database_itself_refuses_a_second_unfinished_job_on_a_collection(engine: Engine) -> None:
    row = {"collection": "c", "owner": "o", "items": "[]", "started_at": "t", "updated_at": "t"}
    with engine.begin() as connection:
        connection.execute(insert(ingest_jobs).values(id="first", status="running", **row))
        connection.execute(
            insert(ingest_jobs).values(id="old", status="done", **row)
        )  # finished ones: any number
    with pytest.raises(IntegrityError), engine.begin() as connection:  # whichever process inserts it
        connection.execute(insert(ingest_jobs).values(id="second", status="queued", **row))


def test_cancelling_a_queued_job_ends_it_at_once_and_frees_its_collection(
    engine: Engine, gated: GatedIngestor
) -> None:
    jobs = _jobs(engine, gated, max_running=1, max_queued=4)
    _start(jobs, "one")
    queued = _start(jobs, "two")
    cancelled = jobs.table.request_cancel(queued.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.cancel_requested, jobs.running("two")) == ("cancelled", True, None)
    gated.gate.set()
    _until(lambda: jobs.running("one") is None)
    time.sleep(0.1)  # the cancelled job's turn on the pool comes and goes
    assert len(gated.threads) == 1  # the cancelled job never ran
    jobs.close()


def test_a_running_job_asked_to_cancel_stops_before_its_next_source(
    engine: Engine, gated: GatedIngestor
) -> None:
    jobs = _jobs(engine, gated)
    job = _start(jobs, "one")
    assert gated.started.acquire(timeout=10)
    asked = jobs.table.request_cancel(job.id)
    assert asked is not None and (asked.status, asked.cancel_requested) == ("running", True)
    gated.gate.set()
    _until(lambda: _status(jobs, job) == "cancelled")
    ended = jobs.table.get(job.id)
    assert ended is not None and ended.results == [] and ended.finished_at is not None
    jobs.close()


def test_finished_jobs_are_forgotten_after_the_ttl_and_beyond_the_count(
    engine: Engine, gated: GatedIngestor
) -> None:
    now = [datetime(2026, 12, 1, tzinfo=UTC)]
    table = JobTable(engine, max_running=2, ttl_s=60, kept=2, clock=lambda: now[0])
    jobs = IngestJobs(table, cast(Ingestor, gated))
    gated.gate.set()
    done = [_start(jobs, f"c{i}") for i in range(3)]
    _until(lambda: all(_status(jobs, job) == "done" for job in done))
    table.claim("another", ["x"])  # a claim deletes what is past the TTL or beyond `kept`
    assert [table.get(job.id) is not None for job in done].count(True) == 2  # the oldest beyond `kept` went
    now[0] += timedelta(seconds=61)
    assert all(table.get(job.id) is None for job in done)
    jobs.close()


def test_close_leaves_jobs_queued_in_the_database_and_the_next_start_resumes_them(
    engine: Engine, gated: GatedIngestor
) -> None:
    jobs = _jobs(engine, gated, max_running=1, max_queued=4)
    running = _start(jobs, "one")
    assert gated.started.acquire(timeout=10)
    queued = _start(jobs, "two")
    threading.Timer(0.2, gated.gate.set).start()
    assert jobs.close(timeout=10) == 0
    assert (_status(jobs, running), _status(jobs, queued)) == ("queued", "queued")
    again = _jobs(engine, gated)
    assert again.resume() == 2
    _until(lambda: _status(again, running) == _status(again, queued) == "done")
    finished = again.table.get(running.id)
    assert finished is not None and finished.attempts == 2
    again.close()


def test_uploads_travel_in_the_database_and_are_placed_in_the_workers_data_dir_then_dropped(
    engine: Engine, settings: Settings
) -> None:
    table = JobTable(engine)
    job = table.claim(
        "notes", ["http://example.org/a"], uploads=[("notes.txt", b"hello"), ("notes.txt", b"v2")]
    )
    assert job.items == ["http://example.org/a", "upload:notes.txt"]
    worker = GatedIngestor(settings.model_copy(update={"data_dir": settings.data_dir.parent / "worker"}))
    worker.gate.set()
    run_job(table, job.id, cast(Ingestor, worker))
    placed = worker.settings.data_dir / "uploads" / "notes" / "notes.txt"
    assert worker.items == [["http://example.org/a", str(placed.resolve())]]
    assert placed.read_bytes() == b"v2"  # the later file of a name replaces the earlier, as on disk
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ingest_uploads)).scalar() == 0


@pytest.fixture
def notes(tmp_path: Path) -> list[str]:
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    return [str(folder / name) for name in sorted(NOTES)]


def test_a_cancelled_run_keeps_the_sources_it_committed_and_a_rerun_adds_only_the_rest(
    tmp_path: Path, embedder: OnnxMiniLMEmbedder, notes: list[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_batch_chunks=1, ingest_workers=1)
    services = Services(settings, embedder=embedder)
    try:
        ingestor = Ingestor(settings, embedder, services.store)
        asked = [0]

        def cancelled() -> bool:  # asked before each source: let two through, then stop
            asked[0] += 1
            return asked[0] > 2

        stopped = ingestor.run(notes, collection="notes", cancelled=cancelled)
        assert [(Path(r.source).name, r.status) for r in stopped.results] == [
            ("a-radiators.txt", "added"),
            ("b-lofts.txt", "added"),
        ]
        recorded = {Path(r.uri).name for r in services.store.sources.list("notes")}
        assert recorded == {"a-radiators.txt", "b-lofts.txt"}
        assert services.store.vectors.count("notes") == 2
        rerun = ingestor.run(notes, collection="notes")
        assert [r.status for r in rerun.results] == ["unchanged", "unchanged", "added"]
    finally:
        services.close()


# ------------------------------------------------------------------ PostgreSQL: several replicas, one table


@pytest.fixture
def pg_engines(pg_url: str) -> Iterator[list[Engine]]:
    """Two engines on one fresh PostgreSQL database, as two replicas would have."""
    settings = Settings(database_url=pg_url)
    engines = [make_engine(settings), make_engine(settings)]
    upgrade(engines[0])
    yield engines
    for engine in engines:
        engine.dispose()


def test_replicas_claiming_one_collection_at_once_get_exactly_one_job(pg_engines: list[Engine]) -> None:
    tables = [JobTable(engine, max_queued=50) for engine in pg_engines]
    barrier = threading.Barrier(8)
    claimed: list[str] = []
    refused: list[str] = []

    def claim(table: JobTable) -> None:
        barrier.wait()
        try:
            claimed.append(table.claim("shared", ["http://example.org/x"], owner="alice").id)
        except JobConflictError as exc:
            refused.append(exc.job_id)

    threads = [threading.Thread(target=claim, args=(tables[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(claimed) == 1 and len(refused) == 7
    assert set(refused) == set(claimed)  # every refusal names the one job (for its owner)


def test_replicas_share_the_queue_caps(pg_engines: list[Engine]) -> None:
    one, two = (JobTable(engine, max_running=1, max_queued=1) for engine in pg_engines)
    one.claim("a", ["x"])
    two.claim("b", ["x"])
    with pytest.raises(JobQueueFullError, match=r"0 jobs running, 2 queued"):
        one.claim("c", ["x"])


def test_a_job_written_through_one_replica_is_read_and_cancelled_through_another(
    pg_engines: list[Engine],
) -> None:
    here, there = (JobTable(engine) for engine in pg_engines)
    job = here.claim("docs", ["http://example.org/x"], owner="alice")
    assert here.begin(job.id) is not None
    here.progress(job.id, done=1, total=3, current="http://example.org/x", results=[{"source": "x"}])
    seen = there.get(job.id)
    assert seen is not None and (seen.status, seen.done, seen.total, seen.attempts) == ("running", 1, 3, 1)
    asked = there.request_cancel(job.id)
    assert asked is not None and asked.cancel_requested and here.cancel_requested(job.id)
