"""The in-process pipeline: deterministic chunk ids, idempotent re-runs and how inputs are expanded."""

from __future__ import annotations

from pathlib import Path

import pypdf
import pytest

from core.retrieval.chunk_store import ChunkStore
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.vector_store import VectorStore
from core.services import Services
from core.settings import Settings
from ingest.pipeline import Ingestor
from tests.helpers import SAMPLE_CORPUS

ODD_PDF_NAME = "Guide du compost, édition 2024 (copie).pdf"
ODD_HTML_NAME = "Größe der Dämmung 断熱.html"


@pytest.fixture
def store(settings: Settings, embedder: OnnxMiniLMEmbedder) -> ChunkStore:
    """Real Chroma and keyword index under the test's temp dir."""
    return Services(settings, embedder=embedder).store


@pytest.fixture
def vectors(store: ChunkStore) -> VectorStore:
    """The store's Chroma side, for inspecting what was written."""
    return store.vectors


@pytest.fixture
def ingestor(settings: Settings, embedder: OnnxMiniLMEmbedder, store: ChunkStore) -> Ingestor:
    return Ingestor(settings, embedder, store)


@pytest.fixture
def odd_names(tmp_path: Path) -> Path:
    """A folder whose small PDF and HTML files have spaces and non-ASCII characters in their names."""
    folder = tmp_path / "mes documents"
    folder.mkdir()
    writer = pypdf.PdfWriter()
    writer.add_page(pypdf.PdfReader(SAMPLE_CORPUS / "compost-field-guide.pdf").pages[0])
    writer.write(folder / ODD_PDF_NAME)
    (folder / ODD_HTML_NAME).write_text(
        "<title>Dämmung</title><h1>Außenwand</h1><p>Eine gedämmte Außenwand spart Heizenergie.</p>"
        "<h2>Dach</h2><p>Über das Dach geht ein Viertel der Wärme verloren.</p>",
        encoding="utf-8",
    )
    return folder


def _ids(vectors: VectorStore, collection: str) -> set[str]:
    return set(vectors.collection(collection).get(include=[])["ids"])


def test_reingest_of_unchanged_files_adds_no_chunks(ingestor: Ingestor, odd_names: Path) -> None:
    first = ingestor.run([str(odd_names)])
    second = ingestor.run([str(odd_names)])
    assert first.failures == [] and first.sources == 2 and first.chunks_added > 0
    assert second.failures == [] and second.sources == 2
    assert second.chunks_added == 0
    assert second.chunks_skipped == first.chunks_added


def test_chunk_ids_are_the_same_in_two_fresh_collections(
    ingestor: Ingestor, vectors: VectorStore, odd_names: Path
) -> None:
    ingestor.run([str(odd_names)], collection="first")
    ingestor.run([str(odd_names)], collection="second")
    assert _ids(vectors, "first") == _ids(vectors, "second")
    assert len(_ids(vectors, "first")) == vectors.count("first") > 0


def test_file_names_with_spaces_and_non_ascii_characters_are_sources(
    ingestor: Ingestor, vectors: VectorStore, settings: Settings, odd_names: Path
) -> None:
    summary = ingestor.run([str(odd_names / ODD_PDF_NAME), str(odd_names / ODD_HTML_NAME)])
    assert summary.failures == [] and summary.sources == 2
    stored = vectors.collection(settings.collection).get(include=["metadatas"])["metadatas"] or []
    assert {meta["source"] for meta in stored} == {
        str((odd_names / ODD_PDF_NAME).resolve()),
        str((odd_names / ODD_HTML_NAME).resolve()),
    }


def test_same_file_named_twice_is_ingested_once(ingestor: Ingestor, odd_names: Path) -> None:
    pdf = odd_names / ODD_PDF_NAME
    summary = ingestor.run([str(pdf), str(odd_names / ".." / odd_names.name / ODD_PDF_NAME), str(odd_names)])
    assert summary.sources == 2
    assert summary.chunks_skipped == 0


def test_directory_walk_skips_hidden_entries_and_ignores_unsupported_files(
    ingestor: Ingestor, tmp_path: Path
) -> None:
    (tmp_path / "docs" / ".cache").mkdir(parents=True)
    (tmp_path / "docs" / ".cache" / "stale.html").write_text("<p>cached copy</p>")
    (tmp_path / "docs" / ".draft.md").write_text("hidden draft")
    (tmp_path / "docs" / "notes.md").write_text("Bleed radiators every autumn.")
    (tmp_path / "docs" / "urls.json").write_text("[]")
    summary = ingestor.run([str(tmp_path / "docs")])
    assert summary.sources == 1
    assert summary.failures == []
    assert [(Path(p.source).name, p.reason) for p in summary.ignored] == [
        ("urls.json", "unsupported file type .json")
    ]


def test_directory_with_nothing_to_ingest_is_a_failure(ingestor: Ingestor, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "photo.png").write_bytes(b"\x89PNG")
    summary = ingestor.run([str(tmp_path / "empty")])
    assert [p.reason for p in summary.failures] == [
        "no files to ingest in directory (looked for .csv .docx .htm .html .markdown .md .pdf .pptx .tsv .txt"
        " .xlsm .xlsx)"
    ]
    assert summary.sources == 0
