"""The robustness matrix's remaining cases, each with a fixture the test makes: PDFs that are encrypted with
an empty password, too long, or over pypdf's default limits; URLs that fail with 500, loop on redirects or
serve an image. Nothing crashes the run; each failure is listed with its reason."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest
from pypdf.generic import ArrayObject, NameObject, NumberObject

from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.services import Services
from core.settings import Settings
from ingest.document import LoadError, PdfLimits
from ingest.formats.pdf import load_pdf
from ingest.pipeline import Ingestor
from tests.fixtures_http import Reply, redirect, serving
from tests.helpers import SAMPLE_CORPUS

SAMPLE_PDF = SAMPLE_CORPUS / "compost-field-guide.pdf"


def _pdf(writer: pypdf.PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _first_page_with_array(elements: int) -> bytes:
    """The sample's first page carrying an extra array of `elements` numbers (real files: huge /W arrays)."""
    writer = pypdf.PdfWriter()
    writer.add_page(pypdf.PdfReader(SAMPLE_PDF).pages[0])
    writer.pages[0][NameObject("/PieceInfo")] = ArrayObject([NumberObject(7)] * elements)
    return _pdf(writer)


def test_pdf_encrypted_with_an_empty_user_password_is_ingested() -> None:
    writer = pypdf.PdfWriter(clone_from=SAMPLE_PDF)
    writer.encrypt(user_password="", owner_password="owner secret", algorithm="AES-128")
    document = load_pdf(_pdf(writer), source="locked-open.pdf", fallback_title="f")
    assert [page.page for page in document.pages] == [1, 2, 3, 4]
    assert "compost" in document.pages[0].text.lower()


def test_pdf_encrypted_with_a_real_password_fails_with_the_reason() -> None:
    writer = pypdf.PdfWriter(clone_from=SAMPLE_PDF)
    writer.encrypt(user_password="correct horse", algorithm="AES-256")
    with pytest.raises(LoadError, match="encrypted PDF: it needs a password"):
        load_pdf(_pdf(writer), source="locked.pdf", fallback_title="f")


def test_pdf_over_the_page_limit_is_refused_naming_the_setting() -> None:
    with pytest.raises(LoadError, match=r"PDF has 4 pages, over the limit of 3; raise DOCENT_MAX_PDF_PAGES"):
        load_pdf(SAMPLE_PDF.read_bytes(), source="s.pdf", fallback_title="f", limits=PdfLimits(max_pages=3))


def test_pdf_array_over_pypdfs_default_limit_is_read_with_docents_raised_limit() -> None:
    data = _first_page_with_array(150_000)
    with pytest.raises(pypdf.errors.LimitReachedError):  # pypdf's own default refuses it
        len(pypdf.PdfReader(io.BytesIO(data)).pages[0].get("/PieceInfo", []))
    document = load_pdf(data, source="big.pdf", fallback_title="f")
    assert [page.page for page in document.pages] == [1]


def test_pdf_array_over_the_configured_limit_fails_naming_the_setting() -> None:
    data = _first_page_with_array(150_000)
    with pytest.raises(LoadError, match=r"PDF exceeds a parser safety limit .*DOCENT_PDF_MAX_ELEMENTS"):
        load_pdf(data, source="big.pdf", fallback_title="f", limits=PdfLimits(max_elements=100_000))


def test_bad_urls_500_redirect_loop_and_image_fail_with_reasons_while_good_ones_go_in(
    tmp_path: Path, embedder: OnnxMiniLMEmbedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data", max_pdf_pages=3)
    store = Services(settings, embedder=embedder).store
    routes = {
        "/broken": Reply(b"oops", status=500, content_type="text/plain"),
        "/loop-a": redirect("/loop-b"),
        "/loop-b": redirect("/loop-a"),
        "/photo.png": Reply(b"\x89PNG\r\n\x1a\n" + bytes(64), content_type="image/png"),
        "/long.pdf": Reply(SAMPLE_PDF.read_bytes(), content_type="application/pdf"),
        "/ok": Reply(b"<html><title>OK</title><p>Bleed radiators every autumn.</p></html>"),
    }
    with serving(routes) as site:
        summary = Ingestor(settings, embedder, store).run(
            [site.url(path) for path in routes if path != "/loop-b"]
        )
    reasons = {p.source.rsplit("/", 1)[-1]: p.reason for p in summary.failures}
    assert reasons == {
        "broken": "HTTP 500 Internal Server Error",
        "loop-a": "too many redirects",
        "photo.png": "unsupported content type 'image/png': expected HTML, PDF, plain text, Markdown, CSV, "
        ".docx, .pptx or .xlsx",
        "long.pdf": "PDF has 4 pages, over the limit of 3; raise DOCENT_MAX_PDF_PAGES to ingest it",
    }
    assert summary.sources == 1 and summary.chunks_added == 1
    failed = {r.source.rsplit("/", 1)[-1]: r.status for r in summary.results}
    assert failed == {
        "broken": "failed",
        "loop-a": "failed",
        "photo.png": "failed",
        "long.pdf": "failed",
        "ok": "added",
    }
    record = store.sources.by_uri(settings.collection, site.url("/broken"))
    assert record is not None and record.last_error == "HTTP 500 Internal Server Error"
