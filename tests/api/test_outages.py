"""Outage drills over real uvicorn: stop the Chroma server, PostgreSQL or Redis under a running
`docent serve`. While it is down `/ready` is 503 naming it and `/invoke` answers 503 with a JSON reason,
each within seconds (never a 500, never a hang); started again, the same process answers as before, with no
restart."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.support.chroma import ChromaServer
from bench.support.postgres import PostgresServer, create_database
from bench.support.servers import docent_serving
from tests.helpers import SAMPLE_CORPUS, docent_env, free_port, run_docent, stop

# Real servers stopped and started: .ci/run runs these after the default suite (-m cluster).
pytestmark = pytest.mark.cluster

QUESTION = "What temperature should a hot compost pile reach?"
PROMPT_S = 10.0
HEAL_S = 30.0
"""How soon /ready is 200 again once the service is back: psycopg's pool retries its connections with an
exponential backoff (1, 2, 4, 8 s, ...), so after a PostgreSQL outage that requests kept asking for, its next
attempt may come some seconds after the restart."""
"""An outage must be reported within this (the probes' and drivers' deadlines are a few seconds)."""


class RedisServer:
    """A `redis-server` of its own on a free loopback port (no persistence), for a drill to stop and start."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
        ]
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [*command, "no"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode:
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process)
            self._process = None


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    with ChromaServer(tmp_path / "chroma-server") as server:
        yield server


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def invoke(base: str, message: str = QUESTION) -> httpx.Response:
    body = {"input": {"message": message}, "config": {"configurable": {}}}
    return httpx.post(f"{base}/invoke", json=body, timeout=60)


def timed(call: object) -> tuple[httpx.Response, float]:
    assert callable(call)
    started = time.monotonic()
    reply = call()
    return reply, time.monotonic() - started


def assert_down(base: str, dependency: str, checks: set[str]) -> None:
    """/ready is 503 with `checks` failing, /invoke 503 naming `dependency`, both within PROMPT_S; /health
    still 200."""
    ready, took = timed(lambda: httpx.get(f"{base}/ready", timeout=30))
    assert ready.status_code == 503, ready.text
    assert took < PROMPT_S
    failed = {name for name, result in ready.json()["checks"].items() if result != "ok"}
    assert failed == checks, ready.json()
    reply, took = timed(lambda: invoke(base))
    assert reply.status_code == 503, reply.text
    assert took < PROMPT_S
    assert reply.json()["dependency"] == dependency
    assert dependency in reply.json()["detail"].lower() and reply.headers["retry-after"]
    chat = httpx.post(
        f"{base}/v1/chat/completions",
        json={"model": "docent", "messages": [{"role": "user", "content": QUESTION}]},
        timeout=30,
    )
    assert chat.status_code == 503, chat.text
    assert chat.json()["error"]["code"] == 503 and dependency in chat.json()["error"]["message"]
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200


def assert_up(base: str, *, answered: bool = True) -> None:
    """Ready again (within HEAL_S) and answering, in the same process."""
    deadline = time.monotonic() + HEAL_S
    ready = httpx.get(f"{base}/ready", timeout=30)
    while ready.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        ready = httpx.get(f"{base}/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    reply = invoke(base)
    assert reply.status_code == 200, reply.text
    if answered:
        assert "55" in reply.json()["output"]["answer"]


def test_a_stopped_chroma_server_makes_ready_and_invoke_503_and_its_restart_heals_them(
    tmp_path: Path, chroma: ChromaServer
) -> None:
    env = docent_env(tmp_path / "data", DOCENT_CHROMA_URL=chroma.url)
    done = run_docent(["ingest", str(SAMPLE_CORPUS), "--json"], env)
    assert done.returncode == 0, done.stderr
    with docent_serving(env, tmp_path / "server.log") as (base, _):
        assert_up(base)
        chroma.stop()
        assert_down(base, "chroma", {"chroma"})
        chroma.start()
        assert_up(base)


def server_mode_env(tmp_path: Path, database_url: str, redis_url: str, chroma_url: str) -> dict[str, str]:
    """What every replica gets in server mode, with a Redis prefix of this test alone."""
    return docent_env(
        tmp_path / "data",
        DOCENT_DATABASE_URL=database_url,
        DOCENT_CHROMA_URL=chroma_url,
        DOCENT_REDIS_URL=redis_url,
        DOCENT_REDIS_PREFIX=f"docent-test-{uuid.uuid4().hex}",
    )


def upgraded(env: dict[str, str]) -> dict[str, str]:
    done = run_docent(["db", "upgrade"], env, timeout=120)
    assert done.returncode == 0, done.stderr
    return env


def test_a_stopped_postgresql_makes_ready_and_invoke_503_and_its_restart_heals_them(
    tmp_path: Path, chroma: ChromaServer, postgres: PostgresServer, own_redis: RedisServer
) -> None:
    env = upgraded(server_mode_env(tmp_path, create_database(postgres.admin_url), own_redis.url, chroma.url))
    with docent_serving(env, tmp_path / "server.log") as (base, _):
        assert_up(base, answered=False)
        postgres.stop()
        assert_down(base, "database", {"records", "checkpointer"})
        postgres.start()
        assert_up(base, answered=False)


def test_a_stopped_redis_makes_ready_and_invoke_503_and_its_restart_heals_them(
    tmp_path: Path, chroma: ChromaServer, postgres: PostgresServer, own_redis: RedisServer
) -> None:
    env = upgraded(server_mode_env(tmp_path, create_database(postgres.admin_url), own_redis.url, chroma.url))
    with docent_serving(env, tmp_path / "server.log") as (base, _):
        assert_up(base, answered=False)
        own_redis.stop()
        assert_down(base, "redis", {"redis"})
        own_redis.start()
        assert_up(base, answered=False)
