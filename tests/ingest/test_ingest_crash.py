"""Crash safety: a real `docent ingest` killed with SIGKILL mid-run, then run again, leaves every source's
chunks stored exactly once, no source marked done without all its chunks, and nothing ingested twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from core.retrieval.keyword_index import KeywordIndex
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.vector_store import VectorStore, open_chroma
from core.settings import Settings
from core.storage.db import open_database
from core.storage.sources import SourceCatalog
from ingest.load import load_path
from ingest.split import make_splitter, split_document
from tests.helpers import REPO_ROOT, VENV_BIN, docent_env, run_docent

SOURCES = 12
TOPICS = ("loft insulation", "heat pumps", "draught proofing", "solar panels", "hot water", "thermostats")


def _corpus(folder: Path) -> Path:
    """Twelve pages of four paragraphs each: a few chunks per source, so the run commits many times."""
    folder.mkdir()
    for n in range(SOURCES):
        topic = TOPICS[n % len(TOPICS)]
        paragraphs = "".join(
            f"<p>Note {n}.{p} on {topic}: "
            + " ".join(f"point {n}-{p}-{w} about {topic}." for w in range(24))
            + "</p>"
            for p in range(4)
        )
        (folder / f"page {n:02d}.html").write_text(
            f"<html><head><title>{topic} {n}</title></head><body><h1>{topic}</h1>{paragraphs}</body></html>"
        )
    return folder


def _expected_ids(folder: Path, settings: Settings) -> set[str]:
    splitter = make_splitter(settings.chunk_size, settings.chunk_overlap)
    return {c.id for path in folder.iterdir() for c in split_document(load_path(path), splitter)}


def _kill_after(folder: Path, data_dir: Path, progress_lines: int) -> None:
    """Start an ingest and SIGKILL it once it has reported `progress_lines` finished sources."""
    env = docent_env(data_dir, DOCENT_INGEST_BATCH_CHUNKS="3", DOCENT_INGEST_WORKERS="1")
    process = subprocess.Popen(
        [str(VENV_BIN / "docent"), "ingest", str(folder)],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = 0
    deadline = time.monotonic() + 120
    try:
        for line in process.stderr:
            seen += line.startswith("ingest ")
            if seen >= progress_lines or time.monotonic() > deadline:
                break
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert seen == progress_lines


@pytest.mark.parametrize("killed_after", [1, 7])
def test_ingest_killed_mid_run_then_rerun_stores_every_chunk_once_and_redoes_only_unfinished_sources(
    tmp_path: Path, killed_after: int
) -> None:
    folder = _corpus(tmp_path / "corpus")
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    _kill_after(folder, data_dir, killed_after)

    database = open_database(settings)
    catalog = SourceCatalog(database)
    done_before = {r.uri for r in catalog.list(settings.collection) if r.content_hash and not r.last_error}
    assert len(done_before) >= killed_after  # each progress line is printed after its source committed

    rerun = run_docent(["ingest", str(folder), "--json"], docent_env(data_dir))
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    unchanged = {r["source"] for r in summary["results"] if r["status"] == "unchanged"}
    assert unchanged == done_before  # finished sources are not ingested twice
    assert summary["sources"] == SOURCES and summary["failures"] == []

    expected = _expected_ids(folder, settings)
    model = OnnxMiniLMEmbedder
    vectors = VectorStore(open_chroma(settings), model_id=model.model_id, dimension=model.dimension)
    stored = vectors.collection(settings.collection).get(include=["metadatas"])
    assert len(stored["ids"]) == len(set(stored["ids"])) == len(expected)
    assert set(stored["ids"]) == expected
    keyword_ids = {
        chunk_id
        for path in folder.iterdir()
        for chunk_id in KeywordIndex(database).source_ids(settings.collection, str(path.resolve()))
    }
    assert keyword_ids == expected
    records = catalog.list(settings.collection)
    assert len(records) == SOURCES
    assert sum(r.chunks for r in records) == len(expected)
    assert all(r.content_hash and r.last_error is None for r in records)
