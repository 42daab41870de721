"""Loaders: turn a URL, an HTML/text file or a PDF into pages of clean text with provenance."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pypdf
from bs4 import BeautifulSoup
from pypdf.errors import PdfReadError, PdfStreamError

from core.text import squash

HTML_SUFFIXES = frozenset({".html", ".htm"})
TEXT_SUFFIXES = frozenset({".txt", ".md"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = HTML_SUFFIXES | TEXT_SUFFIXES | PDF_SUFFIXES
BOILERPLATE_TAGS = (
    "script",
    "style",
    "noscript",
    "nav",
    "footer",
    "header",
    "aside",
    "form",
    "svg",
    "template",
)
_HYPHEN_BREAK = re.compile(r"(\w)-\s*\n\s*(?=[a-z])")


class LoadError(Exception):
    """An input that cannot be ingested; the message says why, for the run's summary."""


@dataclass(frozen=True)
class Page:
    """A unit of text with its place in the source: a PDF page (1-based) or an HTML section."""

    text: str
    page: int | None = None
    section: str | None = None


@dataclass
class LoadedDocument:
    """A source's text, ready to split."""

    source: str
    title: str
    kind: str
    pages: list[Page]
    page_count: int = 1
    warnings: list[str] = field(default_factory=list)


def load_path(path: Path) -> LoadedDocument:
    """Load a local HTML, text/Markdown or PDF file."""
    suffix = path.suffix.lower()
    source = str(path.resolve())
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if suffix in PDF_SUFFIXES:
        return load_pdf(data, source=source, fallback_title=path.name)
    if suffix in HTML_SUFFIXES:
        return load_html(data, source=source, fallback_title=path.name)
    if suffix in TEXT_SUFFIXES:
        return _text_document(data.decode("utf-8", errors="replace"), source=source, title=path.name)
    raise LoadError(
        f"unsupported file type {suffix or '(none)'}: expected one of {sorted(SUPPORTED_SUFFIXES)}"
    )


def load_url(url: str, client: httpx.Client) -> LoadedDocument:
    """Fetch a URL (redirects followed) and load it by its content type."""
    try:
        response = client.get(url)
    except httpx.TimeoutException as exc:
        raise LoadError(f"timed out fetching URL ({type(exc).__name__})") from exc
    except httpx.TooManyRedirects as exc:
        raise LoadError("too many redirects") from exc
    except httpx.HTTPError as exc:
        raise LoadError(f"cannot fetch URL: {exc}") from exc
    if response.status_code >= 400:
        raise LoadError(f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    name = url.rstrip("/").rsplit("/", 1)[-1] or url
    if content_type == "application/pdf" or (not content_type and name.lower().endswith(".pdf")):
        return load_pdf(response.content, source=url, fallback_title=name)
    if content_type in ("text/html", "application/xhtml+xml", ""):
        return load_html(response.content, source=url, fallback_title=url, encoding=response.charset_encoding)
    if content_type in ("text/plain", "text/markdown"):
        return _text_document(response.text, source=url, title=name)
    raise LoadError(f"unsupported content type {content_type!r}")


def load_html(
    data: bytes, *, source: str, fallback_title: str, encoding: str | None = None
) -> LoadedDocument:
    """Clean HTML into sections (one per heading), dropping scripts, styles, navigation and footers."""
    soup = BeautifulSoup(data, "html.parser", from_encoding=encoding)
    title = squash(soup.title.get_text()) if soup.title and soup.title.get_text(strip=True) else ""
    for tag in soup(BOILERPLATE_TAGS):
        tag.decompose()
    body = soup.body or soup
    h1 = body.find("h1")
    title = title or (squash(h1.get_text()) if h1 else "") or fallback_title
    pages: list[Page] = []
    section: str | None = None
    lines: list[str] = []
    for element in body.find_all(
        ["h1", "h2", "h3", "h4", "p", "li", "pre", "td", "th", "blockquote", "dd", "dt"]
    ):
        if element.find_parent(["p", "li", "td", "th", "blockquote", "dd", "dt", "pre"]) is not None:
            continue  # already counted through its parent
        text = squash(element.get_text(" "))
        if not text:
            continue
        if element.name in ("h1", "h2", "h3", "h4"):
            if lines:
                pages.append(Page(text="\n\n".join(lines), section=section))
            section, lines = text, [text]
        else:
            lines.append(text)
    if lines:
        pages.append(Page(text="\n\n".join(lines), section=section))
    if not pages:
        loose = squash(body.get_text(" "))
        if loose:
            pages.append(Page(text=loose))
    if not pages:
        raise LoadError("no text found in HTML")
    return LoadedDocument(source=source, title=title, kind="html", pages=pages)


def load_pdf(data: bytes, *, source: str, fallback_title: str) -> LoadedDocument:
    """Extract each page's text layer with pypdf; pages keep their 1-based number."""
    if not data:
        raise LoadError("empty file (0 bytes), not a PDF")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF: a password is required")
        raw_pages = [page.extract_text() or "" for page in reader.pages]
        metadata_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"corrupt PDF: {exc}") from exc
    if not raw_pages:
        raise LoadError("PDF has no pages")
    pages: list[Page] = []
    empty: list[int] = []
    for number, raw in enumerate(raw_pages, start=1):
        text = _HYPHEN_BREAK.sub(r"\1", raw).strip()
        if text:
            pages.append(Page(text=text, page=number))
        else:
            empty.append(number)
    if not pages:
        raise LoadError(
            f"PDF has no text layer on any of its {len(raw_pages)} pages (scanned?); OCR is not supported"
        )
    warnings = (
        [f"no text layer on page(s) {', '.join(map(str, empty))}; OCR is not supported"] if empty else []
    )
    title = squash(str(metadata_title)) or fallback_title
    return LoadedDocument(
        source=source, title=title, kind="pdf", pages=pages, page_count=len(raw_pages), warnings=warnings
    )


def _text_document(text: str, *, source: str, title: str) -> LoadedDocument:
    if not text.strip():
        raise LoadError("file is empty")
    return LoadedDocument(source=source, title=title, kind="text", pages=[Page(text=text)])
