"""Loaders on their own: real pypdf and BeautifulSoup over files the tests make (no model, no store)."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest

from ingest.document import LoadError
from ingest.formats.html import load_html
from ingest.formats.pdf import load_pdf
from ingest.load import load_path
from tests.helpers import SAMPLE_CORPUS

SAMPLE_PDF = SAMPLE_CORPUS / "compost-field-guide.pdf"


def _pdf_with_unreadable_pages(*pages: int) -> bytes:
    """The sample PDF with the content streams of the given (1-based) pages under an unknown filter."""
    writer = pypdf.PdfWriter(clone_from=SAMPLE_PDF)
    for number in pages:
        writer.pages[number - 1].compress_content_streams()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue().replace(b"/FlateDecode", b"/FlateDecodX")


def _html(body: str, head: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


def test_pdf_pages_keep_their_one_based_numbers() -> None:
    document = load_path(SAMPLE_PDF)
    assert [page.page for page in document.pages] == [1, 2, 3, 4]
    assert document.page_count == 4
    assert document.kind == "pdf"


def test_pdf_page_whose_text_cannot_be_extracted_is_skipped_with_a_warning() -> None:
    document = load_pdf(_pdf_with_unreadable_pages(2), source="guide.pdf", fallback_title="guide.pdf")
    assert [page.page for page in document.pages] == [1, 3, 4]
    assert document.page_count == 4
    assert len(document.warnings) == 1
    assert document.warnings[0].startswith("page 2: text extraction failed")


def test_pdf_with_no_extractable_page_is_a_load_error_not_a_crash() -> None:
    with pytest.raises(LoadError, match="corrupt PDF, no page's text can be extracted"):
        load_pdf(_pdf_with_unreadable_pages(1, 2, 3, 4), source="guide.pdf", fallback_title="guide.pdf")


def test_truncated_pdf_is_reported_as_corrupt() -> None:
    with pytest.raises(LoadError, match="corrupt PDF"):
        load_pdf(SAMPLE_PDF.read_bytes()[:400], source="cut.pdf", fallback_title="cut.pdf")


def test_unsupported_file_type_is_rejected_with_the_supported_list(tmp_path: Path) -> None:
    slides = tmp_path / "slides.key"
    slides.write_bytes(b"PK\x03\x04")
    with pytest.raises(LoadError, match=r"unsupported file type \.key: expected one of \.csv \.docx \.htm"):
        load_path(slides)


def test_html_title_comes_from_the_title_element_not_an_svg_title() -> None:
    body = "<svg><title>logo</title></svg><h1>Heading</h1><p>Text.</p>"
    document = load_html(_html(body, "<title>Page title</title>"), source="s", fallback_title="f")
    assert document.title == "Page title"
    untitled = load_html(_html(body), source="s", fallback_title="f")
    assert untitled.title == "Heading"


def test_html_keeps_text_that_sits_outside_paragraphs() -> None:
    body = (
        "<h2>Draughts</h2><p>Seal the gaps.</p><div>Foam strips <b>cost little</b>.</div>"
        "<div><span>Loose text</span> in a div</div><h5>Minor heading</h5>"
    )
    document = load_html(_html(body), source="s", fallback_title="f")
    assert document.pages[0].text == (
        "Draughts\n\nSeal the gaps.\n\nFoam strips cost little.\n\nLoose text in a div\n\nMinor heading"
    )


def test_html_sections_start_at_headings() -> None:
    body = "<p>Intro.</p><h2>Lofts</h2><p>Insulate.</p><h3>Walls</h3><p>Fill cavities.</p>"
    document = load_html(_html(body), source="s", fallback_title="f")
    assert [(page.section, page.text) for page in document.pages] == [
        (None, "Intro."),
        ("Lofts", "Lofts\n\nInsulate."),
        ("Walls", "Walls\n\nFill cavities."),
    ]


def test_html_article_header_is_kept_but_the_site_header_is_dropped() -> None:
    body = "<header>Site banner</header><article><header><h1>Headline</h1></header><p>Story.</p></article>"
    document = load_html(_html(body), source="s", fallback_title="f")
    text = "\n".join(page.text for page in document.pages)
    assert "Headline" in text
    assert "Site banner" not in text


def test_html_without_a_declared_charset_falls_back_from_utf8_to_windows_1252() -> None:
    latin = _html("<p>Crème brûlée for 5€</p>").decode().encode("cp1252")
    assert load_html(latin, source="s", fallback_title="f").pages[0].text == "Crème brûlée for 5€"
    utf8 = _html("<p>Crème brûlée for 5€</p>")
    assert load_html(utf8, source="s", fallback_title="f").pages[0].text == "Crème brûlée for 5€"


def test_html_charset_from_the_server_wins_over_the_meta_declaration() -> None:
    data = _html("<p>Grüße</p>", '<meta charset="utf-8">').decode().encode("cp1252")
    document = load_html(data, source="s", fallback_title="f", encoding="windows-1252")
    assert document.pages[0].text == "Grüße"


def test_text_file_in_windows_1252_or_with_a_bom_decodes(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy notes.txt"
    legacy.write_bytes("Außenwand dämmen: 20 € pro m²".encode("cp1252"))
    assert load_path(legacy).pages[0].text == "Außenwand dämmen: 20 € pro m²"
    bom = tmp_path / "bom.md"
    bom.write_bytes("\ufeff# Notes\n\nKeep the loft dry.".encode())
    assert load_path(bom).pages[0].text == "Notes\n\nKeep the loft dry."
