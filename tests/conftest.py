"""Shared fixtures: settings on a temp data dir, opened services, and a corpus already ingested."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from bench.support.postgres import temporary_database
from bench.support.servers import SAMPLE_CORPUS, ModelScript, ollama_app, openai_app, serving
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.settings import Settings
from core.storage.db import make_engine, upgrade
from ingest.pipeline import Ingestor
from tests.helpers import REDIS_URL


@pytest.fixture(autouse=True)
def isolated_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process settings must not pick up a developer's own keys or DOCENT_ variables."""
    for name in list(os.environ):
        if name.startswith(("DOCENT_", "OPENAI_", "OLLAMA_")):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose every store lives in this test's temp dir."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database of this test alone (libpq URL), dropped after."""
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings on a fresh embedded SQLite file, or on a fresh PostgreSQL database: a test taking it runs
    on both."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    return Settings(data_dir=tmp_path / "data", database_url=request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(db_settings: Settings) -> Iterator[Engine]:
    """The database of `db_settings`, migrated to the newest revision."""
    engine = make_engine(db_settings)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test alone, for the Redis at 127.0.0.1:6379; its keys are deleted after."""
    name = f"docent-test-{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def scripted_openai() -> Iterator[tuple[str, ModelScript]]:
    """The scripted OpenAI-compatible model server on a loopback port: (base URL, its script)."""
    script = ModelScript()
    with serving(openai_app(script)) as base:
        yield base, script


@pytest.fixture
def scripted_ollama() -> Iterator[tuple[str, ModelScript]]:
    """The scripted Ollama-protocol model server on a loopback port: (base URL, its script)."""
    script = ModelScript()
    with serving(ollama_app(script)) as base:
        yield base, script


@pytest.fixture(scope="session")
def embedder() -> OnnxMiniLMEmbedder:
    """The real ONNX embedder, loaded once per test session."""
    return OnnxMiniLMEmbedder(threads=Settings().onnx_threads)


@pytest.fixture
def services(settings: Settings, embedder: OnnxMiniLMEmbedder) -> Iterator[Services]:
    """Real Chroma and SQLite under the temp dir, sharing the session's embedder."""
    opened = Services(settings, embedder=embedder).open_all()
    yield opened
    opened.close()


@pytest.fixture
def sample_services(services: Services) -> Services:
    """Services whose default collection holds the repo's sample corpus."""
    summary = Ingestor(services.settings, services.embedder, services.store).run([str(SAMPLE_CORPUS)])
    assert not summary.failures and summary.chunks_added > 0
    return services
