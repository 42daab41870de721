"""Test helpers: the corpora and Redis the tests use, and the real servers they start
(bench/support/servers.py)."""

from __future__ import annotations

import asyncio

from bench.support.servers import (
    REPO_ROOT,
    SAMPLE_CORPUS,
    VENV_BIN,
    create_key,
    docent_env,
    docent_server,
    docent_serving,
    free_port,
    ingest_sample,
    run_docent,
    running,
    stop,
    wait_until_up,
)
from core.settings import Settings
from core.storage.checkpoints import setup_checkpoints
from core.storage.db import make_engine, upgrade

__all__ = [
    "ENERGY_CORPUS",
    "REDIS_URL",
    "REPO_ROOT",
    "SAMPLE_CORPUS",
    "SHARED",
    "VENV_BIN",
    "create_key",
    "docent_env",
    "docent_server",
    "docent_serving",
    "free_port",
    "ingest_sample",
    "run_docent",
    "running",
    "stop",
    "upgraded",
    "wait_until_up",
]

SHARED = (REPO_ROOT.parent / "shared").resolve()
ENERGY_CORPUS = SHARED / "corpus" / "energy-saving"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def upgraded(settings: Settings) -> Settings:
    """The database brought to the current schema, as `docent db upgrade` does."""
    engine = make_engine(settings)
    try:
        await asyncio.to_thread(upgrade, engine)
    finally:
        engine.dispose()
    await setup_checkpoints(settings)
    return settings
