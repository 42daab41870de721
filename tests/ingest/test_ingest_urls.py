"""URL ingestion over real HTTP: a server on 127.0.0.1, the real embedder and Chroma on a temp dir."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdf
import pytest

from core.retrieval.onnx_embedder import OnnxMiniLMEmbedder
from core.retrieval.vector_store import VectorStore
from core.services import Services
from core.settings import Settings
from ingest.pipeline import Ingestor, IngestSummary
from tests.fixtures_http import Reply, Site, redirect, serving
from tests.helpers import SAMPLE_CORPUS

ARTICLE = b"""<!DOCTYPE html><html><head>
<title>Draught-proofing your home</title>
<style>.tip { color: green } /* STYLE-MARKER */</style>
<script>var tracker = "SCRIPT-MARKER";</script>
</head><body>
<nav><a href="/">Home</a> NAV-MARKER</nav>
<h1>Draught-proofing</h1>
<p>Sealing gaps around windows and doors is one of the cheapest ways to keep a home warm.</p>
<h2>Chimneys</h2>
<p>An unused chimney can be fitted with a removable draught excluder.</p>
<footer>FOOTER-MARKER copyright</footer>
</body></html>"""

MOVED = (
    b"<html><head><title>Loft insulation</title></head><body><p>Lay 270 mm of mineral wool.</p></body></html>"
)

WINDOWS_1252_META = (
    '<html><head><meta charset="windows-1252"><title>Café déjà vu</title></head>'
    "<body><p>Crème brûlée “tips” cost 5€.</p></body></html>"
).encode("cp1252")

WINDOWS_1252_HEADER = (
    "<html><head><title>Grüße</title></head><body><p>Dämmung für 20 € pro m².</p></body></html>"
)


def _first_pages(count: int) -> bytes:
    """The sample PDF cut to its first pages (fewer chunks to embed)."""
    writer = pypdf.PdfWriter()
    for page in pypdf.PdfReader(SAMPLE_CORPUS / "compost-field-guide.pdf").pages[:count]:
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@dataclass
class UrlRun:
    """One ingestion run over every route, and what the server and the store saw."""

    site: Site
    summary: IngestSummary
    vectors: VectorStore
    settings: Settings

    def chunks(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """(text, metadata) of every stored chunk whose source is this path's URL."""
        got = self.vectors.collection(self.settings.collection).get(
            where={"source": self.site.url(path)}, include=["documents", "metadatas"]
        )
        return [
            (text, dict(meta))
            for text, meta in zip(got["documents"] or [], got["metadatas"] or [], strict=True)
        ]

    def text(self, path: str) -> str:
        return "\n".join(text for text, _ in self.chunks(path))


@pytest.fixture(scope="module")
def url_run(tmp_path_factory: pytest.TempPathFactory, embedder: OnnxMiniLMEmbedder) -> Iterator[UrlRun]:
    routes = {
        "/article": Reply(ARTICLE),
        "/old-loft": redirect("/loft"),
        "/loft": Reply(MOVED),
        "/guide.pdf": Reply(_first_pages(2), content_type="application/pdf"),
        "/download": Reply(_first_pages(1), content_type="application/octet-stream"),
        "/cafe": Reply(WINDOWS_1252_META, content_type="text/html"),
        "/gruesse": Reply(
            WINDOWS_1252_HEADER.encode("cp1252"), content_type="text/html; charset=windows-1252"
        ),
    }
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("urls") / "data", user_agent="DocentTest/1.0 (+ingest)"
    )
    store = Services(settings, embedder=embedder).store
    with serving(routes) as site:
        items = [site.url(path) for path in routes if path != "/loft"]
        items.insert(1, site.url("/article"))  # the same URL twice
        items.append(site.url("/article#chimneys"))  # and again, with a fragment
        summary = Ingestor(settings, embedder, store).run(items)
        yield UrlRun(site, summary, store.vectors, settings)


def test_every_good_url_is_ingested_without_failures(url_run: UrlRun) -> None:
    assert url_run.summary.failures == []
    assert url_run.summary.sources == 6
    assert url_run.summary.chunks_added > 0


def test_url_page_title_is_kept_as_the_chunk_title(url_run: UrlRun) -> None:
    chunks = url_run.chunks("/article")
    assert chunks
    assert {meta["title"] for _, meta in chunks} == {"Draught-proofing your home"}
    assert {meta["kind"] for _, meta in chunks} == {"html"}


def test_url_page_text_has_no_script_style_nav_or_footer(url_run: UrlRun) -> None:
    text = url_run.text("/article")
    assert "cheapest ways to keep a home warm" in text
    assert "removable draught excluder" in text
    for marker in ("SCRIPT-MARKER", "STYLE-MARKER", "NAV-MARKER", "FOOTER-MARKER"):
        assert marker not in text


def test_url_request_carries_the_configured_user_agent(url_run: UrlRun) -> None:
    agents = {seen.headers.get("User-Agent") for seen in url_run.site.requests}
    assert agents == {"DocentTest/1.0 (+ingest)"}


def test_url_redirect_is_followed_to_the_page(url_run: UrlRun) -> None:
    assert url_run.site.hits("/old-loft") == 1
    assert url_run.site.hits("/loft") == 1
    chunks = url_run.chunks("/old-loft")  # stored under the URL the user gave
    assert [meta["title"] for _, meta in chunks] == ["Loft insulation"]
    assert "270 mm of mineral wool" in chunks[0][0]


def test_url_serving_a_pdf_is_ingested_as_a_pdf_with_pages(url_run: UrlRun) -> None:
    chunks = url_run.chunks("/guide.pdf")
    assert {meta["kind"] for _, meta in chunks} == {"pdf"}
    assert {meta["page"] for _, meta in chunks} == {1, 2}


def test_url_serving_a_pdf_as_octet_stream_is_recognised_by_its_header(url_run: UrlRun) -> None:
    chunks = url_run.chunks("/download")
    assert {meta["kind"] for _, meta in chunks} == {"pdf"}
    assert {meta["page"] for _, meta in chunks} == {1}


def test_same_url_twice_in_one_run_is_fetched_and_ingested_once(url_run: UrlRun) -> None:
    assert url_run.site.hits("/article") == 1
    chunks = url_run.chunks("/article")
    assert len({meta["chunk_index"] for _, meta in chunks}) == len(chunks)


def test_url_html_declaring_windows_1252_in_a_meta_tag_decodes_correctly(url_run: UrlRun) -> None:
    chunks = url_run.chunks("/cafe")
    assert [meta["title"] for _, meta in chunks] == ["Café déjà vu"]
    assert "Crème brûlée “tips” cost 5€." in chunks[0][0]


def test_url_html_with_charset_in_the_content_type_decodes_correctly(url_run: UrlRun) -> None:
    chunks = url_run.chunks("/gruesse")
    assert [meta["title"] for _, meta in chunks] == ["Grüße"]
    assert "Dämmung für 20 € pro m²." in chunks[0][0]


def test_url_summary_counts_pdf_pages_and_one_page_per_html_source(url_run: UrlRun) -> None:
    assert url_run.summary.pages == 2 + 1 + 4


def test_bad_urls_fail_with_their_reasons_and_the_run_goes_on(
    tmp_path: Path, embedder: OnnxMiniLMEmbedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data", http_timeout_s=0.5)
    store = Services(settings, embedder=embedder).store
    with serving({"/ok": Reply(MOVED), "/slow": Reply(MOVED, delay_s=30)}) as site:
        summary = Ingestor(settings, embedder, store).run(
            [site.url("/slow"), "http://[::1", site.url("/gone"), site.url("/ok")]
        )
    reasons = {problem.source: problem.reason for problem in summary.failures}
    assert reasons[site.url("/slow")].startswith("timed out after 0.5s fetching URL")
    assert reasons["http://[::1"].startswith("invalid URL")
    assert reasons[site.url("/gone")] == "HTTP 404 Not Found"
    assert summary.sources == 1
