"""The ingest job registry: its own bounded threads, a capped queue, cancellation between sources (what was
committed stays), and finished jobs forgotten after a TTL or beyond a count."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.settings import Settings
from ingest.jobs import IngestJob, IngestJobs, JobConflictError, JobQueueFullError
from ingest.pipeline import Ingestor, IngestSummary

NOTES = {
    "a-radiators.txt": "Bleed radiators every autumn so that trapped air does not keep them cold at the top.",
    "b-lofts.txt": "Lay loft insulation at least 270 mm deep, with the joists covered by a second layer.",
    "c-windows.txt": "Secondary glazing halves the heat lost through single-glazed sash windows.",
}


class GatedIngestor:
    """Stands in for the pipeline where only the job's life matters: each run waits for `gate`, and records
    which thread it ran on."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.gate = threading.Event()
        self.threads: list[str] = []
        self.started = threading.Semaphore(0)

    def run(self, items: list[str], *, collection: str, **_: Any) -> IngestSummary:
        self.threads.append(threading.current_thread().name)
        self.started.release()
        self.gate.wait(30)
        return IngestSummary(collection=collection)


@pytest.fixture
def gated() -> Iterator[GatedIngestor]:
    ingestor = GatedIngestor()
    yield ingestor
    ingestor.gate.set()


def _until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _start(jobs: IngestJobs, gated: GatedIngestor, collection: str, owner: str = "alice") -> IngestJob:
    job = jobs.claim(collection, ["x"], owner=owner)
    jobs.start(job, cast(Ingestor, gated))
    return job


def test_jobs_over_the_running_cap_wait_queued_on_the_ingest_threads_and_a_full_queue_is_refused(
    gated: GatedIngestor,
) -> None:
    jobs = IngestJobs(max_running=1, max_queued=1)
    first = _start(jobs, gated, "one")
    assert gated.started.acquire(timeout=10)
    second = _start(jobs, gated, "two")
    with pytest.raises(JobQueueFullError, match=r"1 jobs running, 1 queued"):
        jobs.claim("three", ["x"])
    assert (first.status, second.status) == ("running", "queued")
    gated.gate.set()
    _until(lambda: second.status == "done")
    assert gated.threads and all(name.startswith("ingest-job") for name in gated.threads)
    jobs.close()


def test_a_busy_collection_refuses_without_naming_the_job_or_the_collection(gated: GatedIngestor) -> None:
    jobs = IngestJobs()
    first = _start(jobs, gated, "tenant-a-private")
    with pytest.raises(JobConflictError) as refused:
        jobs.claim("tenant-a-private", ["y"], owner="mallory")
    assert str(refused.value) == "an ingest job is already running on this collection"
    assert (refused.value.job_id, refused.value.owner) == (first.id, "alice")  # for the route to filter
    jobs.close()


def test_cancelling_a_queued_job_ends_it_at_once_and_frees_its_collection(gated: GatedIngestor) -> None:
    jobs = IngestJobs(max_running=1, max_queued=4)
    _start(jobs, gated, "one")
    queued = _start(jobs, gated, "two")
    jobs.cancel(queued)
    assert (queued.status, queued.cancel.is_set(), jobs.running("two")) == ("cancelled", True, None)
    gated.gate.set()
    _until(lambda: jobs.running("one") is None)
    assert len(gated.threads) == 1  # the cancelled job never ran
    jobs.close()


def test_finished_jobs_are_forgotten_after_the_ttl_and_beyond_the_count(gated: GatedIngestor) -> None:
    now = [0.0]
    jobs = IngestJobs(max_running=2, ttl_s=60, kept=2, clock=lambda: now[0])
    gated.gate.set()
    done = [_start(jobs, gated, f"c{i}") for i in range(3)]
    _until(lambda: all(job.status == "done" for job in done))
    assert [jobs.get(job.id) is not None for job in done].count(True) == 2  # the oldest beyond `kept` went
    now[0] = 61.0
    assert all(jobs.get(job.id) is None for job in done)
    jobs.close()


def test_close_cancels_queued_jobs_and_waits_for_the_running_one(gated: GatedIngestor) -> None:
    jobs = IngestJobs(max_running=1, max_queued=4)
    running = _start(jobs, gated, "one")
    assert gated.started.acquire(timeout=10)
    queued = _start(jobs, gated, "two")
    threading.Timer(0.2, gated.gate.set).start()
    assert jobs.close(timeout=10) == 0
    assert (queued.status, running.cancel.is_set()) == ("cancelled", True)


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
