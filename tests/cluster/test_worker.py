"""Drill: `kill -9` the worker in the middle of an ingest job, start another: the job is retried and
completes; the Chroma server, the keyword index and the source records agree on every chunk, none twice."""

from __future__ import annotations

import chromadb
import httpx
import psycopg
import pytest

from deploy import local_cluster
from tests.cluster.conftest import DrillCluster, eventually, wait_for_job
from tests.fixtures_http import Reply, serving

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

PAGES = 8
PAGE_DELAY_S = 2.5
"""Page n is held back n times this long (however many pages the worker fetches at once): the sources finish
one by one, and the job still runs when the worker is killed."""
COLLECTION = "drill-worker"


def page(number: int) -> bytes:
    """An HTML page of its own: its words differ from every other page's, so no chunk is shared."""
    paragraphs = "".join(
        f"<p>Drill page {number}, section {section}: bin number {number * 100 + section} keeps "
        f"{section + 2} kilograms of kitchen scraps, turned every {number + section + 1} days, with "
        f"{section * 3 + number} litres of dry leaves layered over each {number + 4} cm of greens.</p>"
        for section in range(8)
    )
    return f"<html><head><title>Drill page {number}</title></head><body>{paragraphs}</body></html>".encode()


def test_a_job_whose_worker_is_killed_completes_on_the_next_worker_with_every_store_agreeing(
    cluster: DrillCluster,
) -> None:
    routes = {f"/page-{n}.html": Reply(page(n), delay_s=PAGE_DELAY_S * (n + 1)) for n in range(PAGES)}
    with serving(routes) as site:
        urls = [site.url(path) for path in routes]
        started = httpx.post(
            f"{cluster.url('api-1')}/ingest", json={"urls": urls, "collection": COLLECTION}, timeout=60
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]

        def some_sources_done() -> bool:
            job = httpx.get(f"{cluster.url('api-2')}/ingest/{job_id}", timeout=10).json()
            assert job["status"] in ("queued", "running"), job  # it must not finish before the kill
            return bool(job["done"] >= 2)

        eventually(some_sources_done, timeout=120, what="the job to commit two sources", pause=0.2)
        killed = cluster.process("worker")
        cluster.stop("worker", kill=True)
        assert not local_cluster.alive(killed)
        cluster.start("worker")
        assert cluster.process("worker").pid != killed.pid

        job = wait_for_job(cluster.url("api-2"), job_id, timeout=240)
    assert job["status"] == "done", job
    assert not job["summary"]["failures"], job["summary"]
    # Sources the dead worker had committed are found unchanged on the re-run; the others are added.
    assert len(job["results"]) == PAGES
    assert all(r["status"] in ("added", "unchanged") for r in job["results"]), job["results"]
    assert "retrying it" in cluster.log("worker")  # the new worker found the dead one's job stalled

    with psycopg.connect(cluster.database_url) as connection:
        sources = connection.execute(
            "SELECT uri, chunks FROM sources WHERE collection = %s", (COLLECTION,)
        ).fetchall()
        keyword_ids = [
            row[0]
            for row in connection.execute(
                "SELECT chunk_id FROM keyword_chunks WHERE collection = %s", (COLLECTION,)
            )
        ]
    assert sorted(uri for uri, _ in sources) == sorted(urls)
    assert all(chunks > 0 for _, chunks in sources)
    expected = sum(chunks for _, chunks in sources)

    host, port = cluster.chroma_url.removeprefix("http://").rsplit(":", 1)
    chroma = chromadb.HttpClient(host=host, port=int(port))
    vector_ids = chroma.get_collection(COLLECTION).get(include=[])["ids"]
    assert len(vector_ids) == len(set(vector_ids)) == expected
    assert len(keyword_ids) == len(set(keyword_ids)) == expected
    assert set(vector_ids) == set(keyword_ids)
