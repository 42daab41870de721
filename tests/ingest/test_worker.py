"""`docent worker` drill, on real parts: PostgreSQL, a `chroma run` server and two worker processes. The
first worker is killed with SIGKILL in the middle of a job whose pages a local server hands out slowly; a
second worker finds the job stalled, runs it again and finishes it, and then Chroma, the keyword index and
the source records agree: same counts, no chunk twice, none missing. The workers share nothing but the
database and the Chroma server (each has a data dir of its own, as on two machines)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from bench.support.postgres import temporary_database
from bench.support.servers import VENV_BIN, docent_env, docent_serving, free_port, run_docent, stop
from core.services import Services
from core.settings import Settings
from ingest.jobs import IngestJob, JobTable
from ingest.queue import apply_queue_schema, make_queue_app
from tests.fixtures_http import Reply, Site, serving

# Real workers killed mid-job: .ci/run runs these after the default suite (-m cluster).
pytestmark = pytest.mark.cluster

PAGES = 6
SLOW_S = 1.5
COLLECTION = "drill"


def _page(n: int) -> bytes:
    paragraphs = "".join(
        f"<p>Page {n}, paragraph {i}: heat pumps move heat from outside air into the home; insulation keeps"
        f" it there, and radiators sized for low flow temperatures let the pump run efficiently.</p>"
        for i in range(12)
    )
    return f"<html><head><title>Page {n}</title></head><body>{paragraphs}</body></html>".encode()


@contextmanager
def chroma_server(path: Path, log: Path) -> Iterator[int]:
    """`chroma run` on a free loopback port (its own session, stopped after); yields the port."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "chroma"),
                "run",
                "--path",
                str(path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text(errors="replace")[-2000:]
                with suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, "chroma run did not start"
                time.sleep(0.2)
            yield port
        finally:
            stop(process)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    routes = {f"/page/{n}": Reply(_page(n), delay_s=SLOW_S) for n in range(PAGES)}
    with serving(routes) as running:
        yield running


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[dict[str, str]]:
    """What every Docent process of the drill gets: PostgreSQL (after `docent db upgrade`: Docent's tables,
    the checkpointer's and procrastinate's) and a Chroma server; pages fetched one at a time, each source
    committed on its own. The module's tests share them, each in a collection of its own."""
    root = tmp_path_factory.mktemp("cluster")
    with temporary_database() as pg_url, chroma_server(root / "chroma", root / "chroma.log") as port:
        env = docent_env(
            root / "data",
            DOCENT_DATABASE_URL=pg_url,
            DOCENT_CHROMA_MODE="http",
            DOCENT_CHROMA_HOST="127.0.0.1",
            DOCENT_CHROMA_PORT=str(port),
            DOCENT_CHROMA_URL=f"http://127.0.0.1:{port}",
            DOCENT_FETCH_ALLOW=f'["{site.base.removeprefix("http://")}"]',
            DOCENT_INGEST_WORKERS="1",
            DOCENT_INGEST_BATCH_CHUNKS="1",
            DOCENT_LOG_FORMAT="text",
            DOCENT_RATE_LIMIT_PER_MINUTE="0",  # the tests poll job status as fast as they like
        )
        for _ in range(2):  # as a deployment does once per release; running it again changes nothing
            done = run_docent(["db", "upgrade"], env, timeout=120)
            assert done.returncode == 0, done.stderr
        assert asyncio.run(apply_queue_schema(_settings(env))) is False  # procrastinate's schema is there
        yield env


def _settings(env: dict[str, str]) -> Settings:
    """The drill's settings as the test process sees them (the same environment as the workers')."""
    saved = dict(os.environ)
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("DOCENT_")})
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "docent"), "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop(process)


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _enqueue(settings: Settings, table: JobTable, urls: list[str]) -> IngestJob:
    """What POST /ingest does on a replica in server mode: record the job, then defer it."""
    job = table.claim(COLLECTION, urls, owner="alice")

    async def defer() -> None:
        app = make_queue_app(settings)
        async with app.open_async():
            await app.configure_task("docent.ingest", queue="ingest").defer_async(job_id=job.id)

    asyncio.run(defer())
    return job


def test_a_job_whose_worker_is_killed_mid_job_is_finished_by_another_with_no_duplicate_and_no_gap(
    cluster_env: dict[str, str], site: Site, tmp_path: Path
) -> None:
    settings = _settings(cluster_env)
    services = Services(settings)
    table = JobTable(services.database)
    try:
        urls = [site.url(f"/page/{n}") for n in range(PAGES)]
        job = _enqueue(settings, table, urls)

        def progress() -> IngestJob:
            found = table.get(job.id)
            assert found is not None
            return found

        with worker(cluster_env, tmp_path / "worker-1.log") as first:
            _until(lambda: progress().done >= 2, 120, "the first worker to commit two pages")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        killed = progress()
        assert killed.status == "running" and 2 <= killed.done < PAGES, killed
        elsewhere = {**cluster_env, "DOCENT_DATA_DIR": str(tmp_path / "data-2")}  # another machine's scratch
        with worker(elsewhere, tmp_path / "worker-2.log"):
            _until(lambda: progress().finished, 120, "the second worker to finish the job")
        ended = progress()
        assert (ended.status, ended.attempts, ended.done, ended.error) == ("done", 2, PAGES, None)
        assert sorted(r["source"] for r in ended.results) == sorted(urls)
        assert {r["status"] for r in ended.results} <= {"added", "unchanged"}

        store = services.store
        records = store.sources.list(COLLECTION)
        assert sorted(r.uri for r in records) == sorted(urls)
        assert all(r.chunks > 0 and r.last_error is None for r in records)
        expected = sum(r.chunks for r in records)
        assert store.vectors.count(COLLECTION) == store.keywords.count(COLLECTION) == expected
        for record in records:  # each source's chunks, once each, in both indexes
            vector_ids = store.vectors.source_ids(COLLECTION, record.uri)
            keyword_ids = store.keywords.source_ids(COLLECTION, record.uri)
            assert vector_ids == keyword_ids and len(vector_ids) == record.chunks
    finally:
        services.close()


def test_a_job_posted_to_one_replica_is_run_by_the_worker_and_followed_and_cancelled_on_another(
    cluster_env: dict[str, str], site: Site, tmp_path: Path
) -> None:
    replica = {name: {**cluster_env, "DOCENT_DATA_DIR": str(tmp_path / name)} for name in ("a", "b")}
    note = b"Bleed radiators every autumn so that trapped air does not keep them cold at the top."
    upload = {"name": "radiators.txt", "content_base64": base64.b64encode(note).decode()}
    with (
        docent_serving(replica["a"], tmp_path / "a.log") as (a, _),
        docent_serving(replica["b"], tmp_path / "b.log") as (b, _),
    ):
        posted = httpx.post(
            f"{a}/ingest", json={"urls": [site.url("/page/0")], "files": [upload]}, timeout=30
        )
        assert posted.status_code == 202, posted.text
        job_id = posted.json()["id"]
        busy = httpx.post(f"{b}/ingest", json={"urls": [site.url("/page/1")]}, timeout=30)
        assert (busy.status_code, busy.json()["job_id"]) == (
            409,
            job_id,
        )  # one job per collection, everywhere
        assert httpx.get(f"{b}/ingest/{job_id}", timeout=10).json()["status"] == "queued"  # no worker yet
        with worker(cluster_env, tmp_path / "worker.log"):

            def finished() -> bool:
                return httpx.get(f"{b}/ingest/{job_id}", timeout=10).json()["status"] not in (
                    "queued",
                    "running",
                )

            _until(finished, 120, "the worker to run the job")
            job = httpx.get(f"{b}/ingest/{job_id}", timeout=10).json()
            assert job["status"] == "done" and job["done"] == job["total"] == 2, job
            names = sorted(Path(r["source"]).name for r in job["results"])
            assert names == ["0", "radiators.txt"]
            slow = httpx.post(f"{b}/ingest", json={"urls": [site.url(f"/page/{n}") for n in range(1, PAGES)]})
            assert slow.status_code == 202, slow.text
            _until(
                lambda: httpx.get(f"{a}/ingest/{slow.json()['id']}", timeout=10).json()["done"] >= 1,
                60,
                "the second job's first page",
            )
            asked = httpx.delete(f"{a}/ingest/{slow.json()['id']}", timeout=10).json()
            assert asked["cancel_requested"] is True

            def cancelled_on_b() -> bool:
                seen = httpx.get(f"{b}/ingest/{slow.json()['id']}", timeout=10)
                assert seen.status_code == 200, (seen.status_code, seen.text)
                return bool(seen.json()["status"] == "cancelled")

            _until(cancelled_on_b, 60, "the cancel to reach the worker")
            kept = httpx.get(f"{b}/ingest/{slow.json()['id']}", timeout=10).json()
            assert 1 <= kept["done"] < PAGES - 1  # stopped between sources, keeping what it committed
        listed = {Path(s["uri"]).name for s in httpx.get(f"{a}/sources", timeout=10).json()}
        assert {"0", "radiators.txt"} <= listed and len(listed) == 2 + kept["done"]
