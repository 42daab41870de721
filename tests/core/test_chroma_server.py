"""Vectors on a real Chroma server (`chroma run` on a loopback port): ingest, retrieve and answer through it,
two processes' stores sharing it, an outage that fails fast and heals without reopening anything by hand,
and an embedded store written by another process under a running one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.support.chroma import ChromaServer
from core.errors import DependencyUnavailable
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.vector_store import CHROMA_CONNECT_TIMEOUT_S, VectorStore, open_chroma, open_vector_store
from core.services import Services
from core.settings import Settings
from core.storage.checkpoints import open_checkpointer
from graph.build import build_graph
from graph.turn import run_turn
from ingest.pipeline import Ingestor
from tests.helpers import REPO_ROOT, SAMPLE_CORPUS

QUESTION = "What temperature should a hot compost pile reach?"


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    """A Chroma server of this test alone, storing under its temp dir."""
    with ChromaServer(tmp_path / "chroma-server") as server:
        yield server


def server_services(tmp_path: Path, name: str, url: str, embedder: OnnxMiniLMEmbedder) -> Services:
    """One process's services (a data dir of its own) whose vectors are on the Chroma server at url."""
    return Services(Settings(data_dir=tmp_path / name, chroma_url=url), embedder=embedder).open_all()


def unit_rows(count: int, seed: int, dimension: int = 8) -> np.ndarray:
    rows = np.random.default_rng(seed).random((count, dimension))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def fill(store: VectorStore, prefix: str, rows: np.ndarray) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(len(rows))]
    store.add("docent", ids, ids, [{"source": prefix}] * len(ids), rows)
    return ids


async def test_sample_corpus_ingested_into_a_chroma_server_is_retrieved_and_answered(
    tmp_path: Path, chroma: ChromaServer, embedder: OnnxMiniLMEmbedder
) -> None:
    services = server_services(tmp_path, "data", chroma.url, embedder)
    try:
        summary = Ingestor(services.settings, services.embedder, services.store).run([str(SAMPLE_CORPUS)])
        assert not summary.failures and summary.chunks_added > 0
        assert services.vectors.count("docent") == summary.chunks_added
        assert not (services.settings.chroma_dir).exists()  # nothing went to an embedded store

        for mode in ("dense", "hybrid"):
            found = services.retriever.search(QUESTION, k=3, collection="docent", mode=mode)
            assert any(p["source"].endswith("hot-vs-cold-composting.html") for p in found), mode

        async with open_checkpointer(services.settings) as checkpointer:
            result = await run_turn(build_graph(services, checkpointer), QUESTION)
        assert "55" in result.output["answer"]
        assert any(c["source"].endswith("hot-vs-cold-composting.html") for c in result.output["citations"])
    finally:
        services.close()


def test_two_processes_on_one_chroma_server_see_the_same_chunks_as_soon_as_they_are_written(
    tmp_path: Path, chroma: ChromaServer, embedder: OnnxMiniLMEmbedder
) -> None:
    first = server_services(tmp_path, "replica-a", chroma.url, embedder)
    second = server_services(tmp_path, "replica-b", chroma.url, embedder)
    try:
        assert second.vectors.count("docent") == 0  # looked up (and found missing) before the write
        summary = Ingestor(first.settings, first.embedder, first.store).run([str(SAMPLE_CORPUS)])
        assert summary.chunks_added > 0
        assert second.vectors.count("docent") == summary.chunks_added
        query = embedder.embed([QUESTION])[0]
        assert [p["chunk_id"] for p in second.vectors.search("docent", query, 5)] == [
            p["chunk_id"] for p in first.vectors.search("docent", query, 5)
        ]
    finally:
        first.close()
        second.close()


def test_a_stopped_chroma_server_fails_fast_and_the_same_store_works_again_once_it_restarts(
    tmp_path: Path, chroma: ChromaServer
) -> None:
    store = open_vector_store(
        Settings(data_dir=tmp_path / "data", chroma_url=chroma.url), model_id="m", dimension=8
    )
    rows = unit_rows(20, seed=0)
    ids = fill(store, "a", rows)
    before = [p["chunk_id"] for p in store.search("docent", rows[0], 5)]

    chroma.stop()
    for call in (lambda: store.search("docent", rows[0], 5), lambda: store.count("docent"), store.ping):
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable) as down:
            call()
        assert time.monotonic() - started < 2 * CHROMA_CONNECT_TIMEOUT_S + 1
        assert down.value.dependency == "chroma" and chroma.url in str(down.value)

    chroma.start()
    assert [p["chunk_id"] for p in store.search("docent", rows[0], 5)] == before
    assert store.count("docent") == len(ids)


def test_a_chroma_server_down_at_start_is_connected_on_first_use(tmp_path: Path) -> None:
    server = ChromaServer(tmp_path / "chroma-server")  # its port is chosen, nothing listens on it yet
    store = open_vector_store(
        Settings(data_dir=tmp_path / "data", chroma_url=server.url), model_id="m", dimension=8
    )
    with pytest.raises(DependencyUnavailable):
        store.count("docent")
    with server:
        fill(store, "a", unit_rows(3, seed=1))
        assert store.count("docent") == 3


def test_a_chroma_url_that_is_not_http_is_refused_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DOCENT_CHROMA_URL"):
        open_vector_store(
            Settings(data_dir=tmp_path, chroma_url="tcp://127.0.0.1:1"), model_id="m", dimension=8
        )


def write_from_another_process(settings: Settings, count: int = 2000) -> np.ndarray:
    """Add `count` chunks b0, b1, ... to the embedded store from a second process; returns their vectors."""
    writer = textwrap.dedent(
        f"""
        import numpy as np

        from core.retrieval.vector_store import open_vector_store
        from core.settings import Settings

        store = open_vector_store(Settings(data_dir={str(settings.data_dir)!r}), model_id="m", dimension=8)
        rows = np.random.default_rng(4).random(({count}, 8))
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        ids = [f"b{{i}}" for i in range({count})]
        store.add("docent", ids, ids, [{{"source": "b"}}] * {count}, rows)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", writer], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return unit_rows(count, seed=4)


def test_an_embedded_store_written_by_another_process_answers_from_the_new_state(tmp_path: Path) -> None:
    """The issue's 500: `docent ingest` wrote the embedded files under a running server, whose Chroma then
    kept its old index (and failed with `InternalError: Error finding id` on the new chunks)."""
    settings = Settings(data_dir=tmp_path / "data")
    store = open_vector_store(settings, model_id="m", dimension=8)
    first = fill(store, "a", unit_rows(50, seed=2))
    assert len(store.search("docent", unit_rows(1, seed=3)[0], 5)) == 5

    added = write_from_another_process(settings)
    later = fill(store, "c", unit_rows(10, seed=6))  # a write of its own first: it must not undo theirs

    assert store.search("docent", added[7], 1)[0]["chunk_id"] == "b7"
    found = store.passages("docent", ["b1", "b1999", first[0], later[0]], unit_rows(1, seed=5))
    assert sorted(found) == sorted(["b1", "b1999", first[0], later[0]])
    assert store.count("docent") == 2060
    reopened = open_vector_store(settings, model_id="m", dimension=8)
    assert reopened.count("docent") == 2060 and reopened.search("docent", added[7], 1)[0]["chunk_id"] == "b7"


def test_chroma_failing_to_find_ids_another_process_wrote_is_reopened_and_asked_again(tmp_path: Path) -> None:
    """Without the files' stamp to warn it, the store meets Chroma's `Error finding id` itself: it reopens
    the client once and the same call succeeds."""
    settings = Settings(data_dir=tmp_path / "data")
    store = VectorStore(None, model_id="m", dimension=8, reopen=lambda: open_chroma(settings))
    fill(store, "a", unit_rows(50, seed=2))
    assert len(store.search("docent", unit_rows(1, seed=3)[0], 5)) == 5

    write_from_another_process(settings)

    found = store.passages("docent", ["b1", "b1999"], unit_rows(1, seed=5))
    assert sorted(found) == ["b1", "b1999"]
