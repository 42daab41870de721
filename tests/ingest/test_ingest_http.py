"""Ingestion over HTTP on real uvicorn: POST /ingest starts a background job, GET /ingest/{id} reports it,
GET /sources and DELETE /sources/{id} manage what was ingested; one job per collection at a time."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.fetch import GENERIC_REFUSAL
from tests.fixtures_http import Reply, Site, serving
from tests.helpers import docent_server

PAGE = b"<html><title>Heat pumps</title><body><p>A heat pump moves heat from outside air.</p></body></html>"
NOTES = b"Bleed radiators every autumn so that trapped air does not keep them cold at the top."


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with serving({"/heat-pumps": Reply(PAGE), "/slow": Reply(PAGE, delay_s=4)}) as running:
        yield running


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ingest-http")
    allow = f'["{site.base.removeprefix("http://")}"]'  # POST /ingest fetches loopback only if allow-listed
    with docent_server(
        root / "data", root / "server.log", DOCENT_HTTP_TIMEOUT_S="10", DOCENT_FETCH_ALLOW=allow
    ) as url:
        yield url


def _wait(base: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = httpx.get(f"{base}/ingest/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise TimeoutError(job_id)


def _upload(name: str, data: bytes) -> dict[str, str]:
    return {"name": name, "content_base64": base64.b64encode(data).decode()}


def test_post_ingest_runs_a_job_over_urls_and_uploaded_files_and_reports_each_source(
    base: str, site: Site
) -> None:
    started = httpx.post(
        f"{base}/ingest",
        json={
            "urls": [site.url("/heat-pumps"), site.url("/gone")],
            "files": [_upload("radiator notes.txt", NOTES)],
        },
    )
    assert started.status_code == 202, started.text
    job = _wait(base, started.json()["id"])
    assert job["status"] == "done" and job["done"] == job["total"] == 3
    results = {Path(r["source"]).name: (r["status"], r["reason"]) for r in job["results"]}
    assert results == {
        "heat-pumps": ("added", None),
        "radiator notes.txt": ("added", None),
        "gone": ("failed", GENERIC_REFUSAL),  # over HTTP, why a fetch failed is in the server's log only
    }
    assert job["summary"]["chunks_added"] == 2


def test_sources_are_listed_and_one_is_deleted_with_its_chunks(base: str, site: Site) -> None:
    sources = {Path(s["uri"]).name: s for s in httpx.get(f"{base}/sources").json()}
    assert {"heat-pumps", "radiator notes.txt"} <= set(sources)
    notes = sources["radiator notes.txt"]
    assert (notes["kind"], notes["chunks"], notes["last_error"]) == ("text", 1, None)
    deleted = httpx.delete(f"{base}/sources/{notes['id']}")
    assert deleted.json() == {"id": notes["id"], "uri": notes["uri"], "chunks_removed": 1}
    assert notes["uri"] not in {s["uri"] for s in httpx.get(f"{base}/sources").json()}
    assert httpx.delete(f"{base}/sources/{notes['id']}").status_code == 404
    answer = httpx.post(f"{base}/invoke", json={"input": {"message": "When should I bleed radiators?"}})
    assert "Bleed radiators" not in answer.text


def test_a_second_job_on_the_same_collection_gets_409_with_the_running_jobs_id_and_the_loop_stays_free(
    base: str, site: Site
) -> None:
    first = httpx.post(f"{base}/ingest", json={"urls": [site.url("/slow")]}).json()
    second = httpx.post(f"{base}/ingest", json={"urls": [site.url("/heat-pumps")]})
    assert second.status_code == 409
    assert second.json()["job_id"] == first["id"]
    other = httpx.post(f"{base}/ingest", json={"urls": [site.url("/heat-pumps")], "collection": "other"})
    assert other.status_code == 202  # another collection is free
    started = time.monotonic()
    assert httpx.get(f"{base}/health").status_code == 200
    assert time.monotonic() - started < 1.0  # the jobs run in worker threads, not on the event loop
    assert httpx.get(f"{base}/ingest/{first['id']}").json()["status"] == "running"
    assert _wait(base, first["id"])["status"] == "done"
    assert _wait(base, other.json()["id"])["status"] == "done"
    assert httpx.post(f"{base}/ingest", json={"urls": [site.url("/heat-pumps")]}).status_code == 202


def test_unknown_job_is_404_and_a_request_without_sources_is_422(base: str) -> None:
    assert httpx.get(f"{base}/ingest/nope").status_code == 404
    assert httpx.post(f"{base}/ingest", json={}).status_code == 422
    bad = httpx.post(f"{base}/ingest", json={"files": [{"name": "a.txt", "content_base64": "%%%"}]})
    assert bad.status_code == 422 and "not valid base64" in bad.text
