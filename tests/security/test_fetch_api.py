"""Safe fetching through the HTTP API: a real `docent serve` (POST /ingest → ingest job → Ingestor.run under
the strict policy) against attacker and internal servers on loopback; the server RSS is read from /proc."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.support.servers import docent_serving
from ingest.fetch import GENERIC_REFUSAL
from tests.helpers import docent_env, free_port
from tests.security.fetch_servers import (
    SECRET,
    MiB,
    RssPeak,
    Server,
    body,
    gzip_bomb,
    pieces,
    rss_bytes,
    serving,
    stream,
    zeros,
)


@dataclass
class Deployment:
    """Docent serving with the attacker's server in DOCENT_FETCH_ALLOW, and an internal service beside it."""

    base: str
    pid: int
    attacker: Server
    internal: Server
    log: Path

    def ingest(self, urls: list[str]) -> dict[str, Any]:
        """POST /ingest and wait for the job to finish; the finished job."""
        started = httpx.post(f"{self.base}/ingest", json={"urls": urls}, timeout=30)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job: dict[str, Any] = httpx.get(f"{self.base}/ingest/{job_id}", timeout=30).json()
            if job["status"] not in ("queued", "running"):
                return job
            time.sleep(0.1)
        raise TimeoutError(f"ingest job {job_id} did not finish")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("safe-fetch")
    routes = {
        "/bomb": stream(pieces(gzip_bomb()), {"Content-Type": "text/html", "Content-Encoding": "gzip"}),
        "/huge": stream(zeros(300 * MiB), {"Content-Type": "text/plain"}),
        "/api": body(b'{"a": 1}', "application/json"),
    }
    with serving(routes) as attacker, serving({"/secret": body(SECRET, "text/plain")}) as internal:
        allow = json.dumps([f"127.0.0.1:{attacker.port}"])
        env = docent_env(root / "data", DOCENT_FETCH_ALLOW=allow)
        with docent_serving(env, root / "serve.log") as (base, process):
            yield Deployment(base, process.pid, attacker, internal, root / "serve.log")


def test_post_ingest_over_the_url_cap_is_422_naming_the_limit(deployment: Deployment) -> None:
    over = [f"https://example.com/{n}" for n in range(101)]
    answer = httpx.post(f"{deployment.base}/ingest", json={"urls": over}, timeout=30)
    assert answer.status_code == 422
    assert "at most 100" in answer.text and "DOCENT_INGEST_MAX_URLS" in answer.text
    schema_cap = httpx.post(f"{deployment.base}/ingest", json={"urls": over * 10}, timeout=30)
    assert schema_cap.status_code == 422


def test_post_ingest_refuses_internal_targets_with_one_generic_text(deployment: Deployment) -> None:
    urls = [
        deployment.internal.url("/secret"),  # a refused address
        f"http://127.0.0.1:{free_port()}/",  # a closed port (also refused: not in the allow-list)
        deployment.attacker.url("/api"),  # allowed, but JSON
    ]
    job = deployment.ingest(urls)
    reasons = {result["source"]: result["reason"] for result in job["results"]}
    assert reasons == dict.fromkeys(urls, GENERIC_REFUSAL)
    assert deployment.internal.hits() == 0
    assert SECRET.decode() not in json.dumps(job)
    logged = deployment.log.read_text(errors="replace")  # the specific reasons: in the server's log only
    assert "a loopback address" in logged and "unsupported content type 'application/json'" in logged


def test_post_ingest_gzip_bomb_and_300_mb_body_are_refused_and_server_memory_returns(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.ingest([deployment.attacker.url("/api")])  # warm the job path first
    before = rss_bytes(deployment.pid)
    with RssPeak(deployment.pid) as peak:
        job = deployment.ingest([deployment.attacker.url("/bomb"), deployment.attacker.url("/huge")])
    time.sleep(0.5)
    after = rss_bytes(deployment.pid)
    reasons = {result["source"].rsplit("/", 1)[-1]: result["reason"] for result in job["results"]}
    assert "once decompressed" in reasons["bomb"], reasons
    assert "on the wire" in reasons["huge"], reasons
    with capsys.disabled():
        print(f"\n[drill] docent serve RSS MiB: before {before / MiB:.1f}, peak {peak.peak / MiB:.1f}, "
              f"after {after / MiB:.1f}")  # fmt: skip
    assert after - before < 50 * MiB, (before, peak.peak, after)
