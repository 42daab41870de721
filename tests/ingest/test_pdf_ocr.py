"""OCR for pages without a text layer: a scanned copy of a text PDF (its pages rendered to images and wrapped
as a PDF, here) is read by Tesseract, marked `ocr`, and found by a question; OCR can be turned off, stops at
its bounds, and says how to install Tesseract when it is missing."""

from __future__ import annotations

import os

import pytest

from core.retrieval.chunk_store import ChunkStore
from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.retriever import Retriever
from core.services import Services
from core.settings import Settings
from ingest.document import LoadError, OcrOptions
from ingest.formats.ocr import INSTALL_HINT, tesseract
from ingest.formats.pdf import load_pdf
from ingest.pipeline import Ingestor
from tests.helpers import SAMPLE_CORPUS
from tests.ingest.pdf_fixtures import scanned_copy

SAMPLE = SAMPLE_CORPUS / "compost-field-guide.pdf"
# Tesseract is part of the install (README, .ci/install): only a developer's machine may lack it, never CI.
pytestmark = pytest.mark.skipif(
    tesseract() is None and not os.environ.get("CI"), reason=f"Tesseract is not installed ({INSTALL_HINT})"
)


@pytest.fixture(scope="module")
def scanned() -> bytes:
    return scanned_copy(SAMPLE.read_bytes())


def test_scanned_pdf_pages_are_recognised_and_marked_as_ocr(scanned: bytes) -> None:
    document = load_pdf(scanned, source="scan.pdf", fallback_title="scan.pdf")
    assert [(page.page, page.ocr) for page in document.pages] == [(1, True), (2, True), (3, True), (4, True)]
    assert document.empty_pages == [] and document.warnings == []
    text = " ".join(document.pages[3].text.split())
    assert text.startswith("Bokashi Fermentation Bokashi is a Japanese method that ferments food scraps")


def test_scanned_pdf_ingests_through_ocr_and_a_question_finds_its_page(
    scanned: bytes, embedder: OnnxMiniLMEmbedder, settings: Settings
) -> None:
    path = settings.data_dir.parent / "scanned-field-guide.pdf"
    path.write_bytes(scanned)
    store: ChunkStore = Services(settings, embedder=embedder).store
    summary = Ingestor(settings, embedder, store).run([str(path)])
    assert summary.failures == [] and summary.pages == 4 and summary.chunks_added > 0
    retriever = Retriever(embedder, store, settings)
    try:
        [top] = retriever.search("How long does a full bokashi bucket stay sealed?", k=1, collection="docent")
    finally:
        retriever.close()
    assert top["page"] == 4
    stored = store.vectors.collection("docent").get(ids=[top["chunk_id"]], include=["metadatas"])
    assert (stored["metadatas"] or [{}])[0].get("ocr") is True


def test_ocr_off_leaves_scanned_pages_empty_and_says_so(scanned: bytes) -> None:
    with pytest.raises(LoadError, match=r"no text layer on any of its 4 page\(s\) .*DOCENT_OCR=off"):
        load_pdf(scanned, source="scan.pdf", fallback_title="scan.pdf", ocr=OcrOptions(mode="off"))


def test_ocr_stops_at_its_page_bound_and_reports_the_rest_as_empty(scanned: bytes) -> None:
    document = load_pdf(scanned, source="scan.pdf", fallback_title="f", ocr=OcrOptions(max_pages=1))
    assert [page.page for page in document.pages] == [1]
    assert document.empty_pages == [2, 3, 4]
    assert all("DOCENT_OCR_MAX_PAGES" in warning for warning in document.warnings)


def test_missing_tesseract_is_reported_with_the_install_command(
    scanned: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(LoadError, match=r"tesseract is not installed \(apt-get install tesseract-ocr"):
        load_pdf(scanned, source="scan.pdf", fallback_title="scan.pdf")
