"""One real local cluster (deploy/local_cluster.py: PostgreSQL, Redis, a Chroma server, two replicas, one
worker, nginx) shared by every drill of this package, and helpers the drills read it with.

The cluster is started once per session (start-up costs ~40 s here) and always brought down by `down`, which
stops each recorded process by PID. Each drill restores what it stops; `heal` starts again anything a failed
drill left down, so that one failure does not cascade into the next drill.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from deploy import local_cluster
from tests.helpers import SAMPLE_CORPUS

CLUSTER_ENV = {
    "DOCENT_LLM_PROVIDER": "extractive",
    "DOCENT_RATE_LIMIT_PER_MINUTE": "0",
    # The drills' fixture web servers listen on loopback, which POST /ingest refuses unless the operator
    # allows it (docs/security.md, Safe fetching).
    "DOCENT_FETCH_ALLOW": '["127.0.0.1/32"]',
    # Each source is embedded and written on its own, so that a job killed midway has committed some of its
    # sources (the worker drill); only the worker ingests.
    "DOCENT_INGEST_BATCH_CHUNKS": "1",
    # The worker drill's slowest page takes 20 s on purpose (the job must still run when the worker dies):
    # well within the fetch timeout, so no page fails for being slow.
    "DOCENT_HTTP_TIMEOUT_S": "45",
}
"""On top of the topology's own variables, for every Docent process of the drills' cluster."""


@dataclass
class DrillCluster:
    """The running cluster: its state dir and the recorded state, re-read after each restart."""

    state_dir: Path

    @property
    def state(self) -> local_cluster.State:
        state = local_cluster.State.load(self.state_dir)
        assert state is not None, f"no cluster recorded in {self.state_dir}"
        return state

    def process(self, name: str) -> local_cluster.Process:
        (found,) = [p for p in self.state.processes if p.name == name]
        return found

    def url(self, name: str) -> str:
        """The base URL of a replica (api-1, api-2) or of nginx."""
        url = self.process(name).url
        assert url, f"{name} has no URL"
        return url

    @property
    def nginx(self) -> str:
        return self.url("nginx")

    @property
    def replicas(self) -> list[str]:
        return sorted(p.name for p in self.state.processes if p.name.startswith("api-"))

    @property
    def database_url(self) -> str:
        url = self.state.database_url
        assert url, "the cluster has no database URL"
        return url

    @property
    def chroma_url(self) -> str:
        return self.state.env["DOCENT_CHROMA_URL"]

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.state.processes}

    def stop(self, name: str, *, kill: bool = False) -> None:
        local_cluster.stop_one(self.state_dir, name, lambda _: None, kill=kill)

    def start(self, name: str) -> None:
        local_cluster.start_one(self.state_dir, name, timeout=120)

    def stacks(self, name: str) -> str:
        """The process's Python stacks right now (py-spy, where installed): what a hung request waits on."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            return "(py-spy is not installed: no stacks)"
        pid = str(self.process(name).pid)
        done = subprocess.run([spy, "dump", "--pid", pid], capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    def log(self, name: str) -> str:
        """Everything the process wrote, over all its restarts."""
        return Path(self.process(name).log).read_text(errors="replace")


@pytest.fixture(scope="session")
def cluster() -> Iterator[DrillCluster]:
    """The drills' cluster (own PostgreSQL, two replicas, auth off, extractive answerer, no rate limit).

    Its state dir is not under pytest's basetemp, which another pytest run may prune while the drills run;
    it is removed after `down` unless a drill failed (its logs/ tell why)."""
    state_dir = Path(tempfile.mkdtemp(prefix="docent-drills-"))
    passed = {k: v for k, v in os.environ.items() if not k.startswith(("DOCENT_", "OPENAI_", "OLLAMA_"))}
    try:
        with mock.patch.dict(os.environ, {**passed, **CLUSTER_ENV}, clear=True):
            local_cluster.up(state_dir, 2, "off", "own", 180, lambda _: None)
        yield DrillCluster(state_dir)
    finally:
        local_cluster.down(state_dir, keep=False, say=lambda _: None)
        if not FAILED:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            print(f"drill cluster logs kept in {state_dir / 'logs'}")


FAILED: list[str] = []
"""Drills that failed this session: the cluster's logs are kept for them."""


@pytest.fixture(autouse=True)
def heal(cluster: DrillCluster, request: pytest.FixtureRequest) -> Iterator[None]:
    """After each drill, whatever it left stopped runs again (same command, port and environment)."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        FAILED.append(request.node.nodeid)
    for process in cluster.state.processes:
        if not local_cluster.alive(process):
            cluster.start(process.name)


@pytest.fixture(scope="session")
def sample_collection(cluster: DrillCluster) -> str:
    """A collection holding the sample corpus, ingested once through nginx, for drills that only ask."""
    name = "drill-sample"
    started = httpx.post(
        f"{cluster.nginx}/ingest", json={"files": sample_uploads(), "collection": name}, timeout=60
    )
    assert started.status_code == 202, started.text
    job = wait_for_job(cluster.nginx, started.json()["id"], timeout=180)
    assert job["status"] == "done" and job["summary"]["chunks_added"] > 0, job
    return name


def sample_uploads() -> list[dict[str, str]]:
    """The sample corpus as POST /ingest's inline files."""
    return [
        {"name": path.name, "content_base64": base64.b64encode(path.read_bytes()).decode()}
        for path in sorted(SAMPLE_CORPUS.iterdir())
    ]


def wait_for_job(base: str, job_id: str, timeout: float) -> dict[str, Any]:
    """Poll GET /ingest/{id} on `base` until the job is no longer queued or running; its last state."""
    deadline = time.monotonic() + timeout
    while True:
        reply = httpx.get(f"{base}/ingest/{job_id}", timeout=10)
        assert reply.status_code == 200, reply.text
        job: dict[str, Any] = reply.json()
        if job["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def eventually(check: Callable[[], bool], timeout: float, what: str, pause: float = 0.5) -> None:
    """Wait until check() holds; fail with `what` when it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(pause)
