"""Loaders: turn a URL, an HTML/text file or a PDF into pages of clean text with provenance.

httpx, bs4 and pypdf are imported by the loaders that use them, so reading and hashing a file (all an
unchanged re-ingest does) does not pay for them.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.text import squash
from ingest.fetch import GENERIC_REFUSAL, Fetched, FetchError, FetchPolicy, fetch

if TYPE_CHECKING:
    import httpx
    import pypdf
    from bs4.element import Tag
    from pypdf.errors import LimitReachedError

HTML_SUFFIXES = frozenset({".html", ".htm"})
TEXT_SUFFIXES = frozenset({".txt", ".md"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = HTML_SUFFIXES | TEXT_SUFFIXES | PDF_SUFFIXES
SUPPORTED_LIST = " ".join(sorted(SUPPORTED_SUFFIXES))
PDF_CONTENT_TYPES = frozenset({"application/pdf", "application/x-pdf"})
HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_CONTENT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
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
SECTION_HEADINGS = ("h1", "h2", "h3", "h4")
# Blocks whose whole text is one paragraph; any other tag holding blocks is walked into.
TEXT_BLOCKS = (
    *("p", "li", "pre", "td", "th", "blockquote", "dd", "dt", "h5", "h6"),
    *("figcaption", "caption", "address", "summary"),
)
CONTAINERS = ("div", "section", "article", "main")
_HYPHEN_BREAK = re.compile(r"(\w)-\s*\n\s*(?=[a-z])")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Browsers read these labels as windows-1252, a superset that also maps 0x80-0x9F (e.g. the euro sign).
_WINDOWS_1252_ALIASES = frozenset({"latin-1", "iso8859-1", "ascii", "cp1252"})
log = logging.getLogger(__name__)


class LoadError(Exception):
    """An input that cannot be ingested; the message says why, for the run's summary."""


@dataclass(frozen=True)
class Anchor:
    """The span `[start, end)` of a page's text that came from the element with this id."""

    start: int
    end: int
    id: str


@dataclass(frozen=True)
class Page:
    """A unit of text with its place in the source: a PDF page (1-based) or an HTML section."""

    text: str
    page: int | None = None
    section: str | None = None
    anchors: tuple[Anchor, ...] = ()
    """Character spans of the page's identified blocks (HTML elements with an `id`)."""


@dataclass
class LoadedDocument:
    """A source's text, ready to split."""

    source: str
    title: str
    kind: str
    pages: list[Page]
    page_count: int = 1
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PdfLimits:
    """How much of a PDF Docent will parse.

    pypdf's defaults refuse arrays or dictionaries over 100,000 elements (LimitReachedError); real documents
    with huge font-width or annotation arrays trip that, so the element limit here is deliberately higher.
    """

    max_pages: int = 2000
    max_elements: int = 1_000_000


@dataclass(frozen=True)
class RawSource:
    """A source's bytes before parsing, and which parser they need (`pdf`, `html` or `text`)."""

    source: str
    data: bytes
    kind: str
    name: str
    charset: str | None = None


def read_path(path: Path) -> RawSource:
    """Read a local HTML, text/Markdown or PDF file's bytes."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported file type {suffix or '(none)'}: expected one of {SUPPORTED_LIST}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    kind = "pdf" if suffix in PDF_SUFFIXES else "html" if suffix in HTML_SUFFIXES else "text"
    return RawSource(str(path.resolve()), data, kind, path.name)


def fetch_url(url: str, client: httpx.Client, policy: FetchPolicy | None = None) -> RawSource:
    """Fetch a URL under a policy (ingest/fetch.py; default: the operator's, private addresses allowed) and
    tell its kind from the content type. The specific reason of a failure is always logged; the error says
    it only if the policy reveals reasons."""
    policy = policy or FetchPolicy(allow_private=True)
    try:
        return _raw_source(fetch(url, client, policy), policy)
    except FetchError as exc:
        log.warning("fetch failed: %s: %s", url, exc.reason)
        raise LoadError(policy.message(exc)) from exc
    except Exception as exc:  # an httpx or loader surprise must not leak details past a strict policy
        if policy.detailed_errors:
            raise
        log.warning("fetch failed: %s: %s: %s", url, type(exc).__name__, exc)
        raise LoadError(GENERIC_REFUSAL) from exc


def _raw_source(fetched: Fetched, policy: FetchPolicy) -> RawSource:
    url, data, content_type = fetched.url, fetched.data, fetched.content_type
    name = fetched.final_url.path.rstrip("/").rsplit("/", 1)[-1] or url
    if content_type in PDF_CONTENT_TYPES or (
        content_type in ("", "application/octet-stream") and data[:1024].find(b"%PDF-") >= 0
    ):
        return RawSource(url, data, "pdf", name)
    if content_type in HTML_CONTENT_TYPES or not content_type:
        if len(data) > policy.max_html_bytes:
            raise FetchError(
                f"HTML page of {len(data):,} bytes, over the parser's limit of {policy.max_html_bytes:,} "
                "(DOCENT_FETCH_MAX_HTML_BYTES)",
                limit=True,
            )
        return RawSource(url, data, "html", url, fetched.charset)
    if content_type in TEXT_CONTENT_TYPES:
        return RawSource(url, data, "text", name, fetched.charset)
    raise FetchError(f"unsupported content type {content_type!r}: expected HTML, plain text or PDF")


def parse(raw: RawSource, limits: PdfLimits | None = None) -> LoadedDocument:
    """Turn fetched or read bytes into a document."""
    if raw.kind == "pdf":
        return load_pdf(raw.data, source=raw.source, fallback_title=raw.name, limits=limits)
    if raw.kind == "html":
        return load_html(raw.data, source=raw.source, fallback_title=raw.name, encoding=raw.charset)
    return _text_document(decode_text(raw.data, raw.charset), source=raw.source, title=raw.name)


def load_path(path: Path, limits: PdfLimits | None = None) -> LoadedDocument:
    """Load a local HTML, text/Markdown or PDF file."""
    return parse(read_path(path), limits)


def load_html(
    data: bytes, *, source: str, fallback_title: str, encoding: str | None = None
) -> LoadedDocument:
    """Clean HTML into sections (one per heading), dropping scripts, styles, navigation and footers.

    `encoding` is the charset the server declared; it wins over a <meta> declaration, as in browsers.
    """
    from bs4 import BeautifulSoup
    from bs4.dammit import EncodingDetector

    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    soup = BeautifulSoup(decode_text(data, encoding, declared), "html.parser")
    title_tag = next((t for t in soup.find_all("title") if t.find_parent("svg") is None), None)
    title = squash(title_tag.get_text()) if title_tag is not None else ""
    for tag in soup(BOILERPLATE_TAGS):
        if tag.name == "header" and tag.find_parent(["article", "main"]) is not None:
            continue  # an article's own header holds its headline, not site chrome
        tag.decompose()
    body = soup.body or soup
    h1 = body.find("h1")
    title = title or (squash(h1.get_text()) if h1 else "") or fallback_title
    pages: list[Page] = []
    section: str | None = None
    blocks: list[Block] = []
    for block in _blocks(body):
        if block.name in SECTION_HEADINGS:
            if blocks:
                pages.append(_section_page(blocks, section))
            section, blocks = block.text, [block]
        else:
            blocks.append(block)
    if blocks:
        pages.append(_section_page(blocks, section))
    if not pages:
        raise LoadError("no text found in HTML")
    return LoadedDocument(source=source, title=title, kind="html", pages=pages)


@dataclass(frozen=True)
class Block:
    """A heading or paragraph of an HTML page, with the element's id if it has one."""

    name: str
    text: str
    id: str | None = None


def _section_page(blocks: list[Block], section: str | None) -> Page:
    """Join a section's blocks with blank lines, remembering where each identified block sits."""
    anchors: list[Anchor] = []
    offset = 0
    for block in blocks:
        if block.id:
            anchors.append(Anchor(offset, offset + len(block.text), block.id))
        offset += len(block.text) + 2
    return Page(text="\n\n".join(b.text for b in blocks), section=section, anchors=tuple(anchors))


def _element_id(tag: Tag) -> str | None:
    value = tag.get("id")
    return value.strip() or None if isinstance(value, str) else None


def _blocks(node: Tag) -> list[Block]:
    """Each heading and paragraph in document order; loose text becomes a paragraph."""
    from bs4.element import NavigableString, PreformattedString, Tag

    blocks: list[Block] = []
    loose: list[str] = []

    def flush() -> None:
        if text := squash("".join(loose)):  # the strings carry their own spacing
            blocks.append(Block("p", text))
        loose.clear()

    for child in node.children:
        if isinstance(child, NavigableString):
            if not isinstance(child, PreformattedString):  # comments, doctypes, CDATA
                loose.append(str(child))
        elif not isinstance(child, Tag):
            continue
        elif child.name in SECTION_HEADINGS or child.name in TEXT_BLOCKS:
            flush()
            if text := squash(child.get_text(" ")):
                blocks.append(Block(child.name, text, _element_id(child)))
        elif child.name in CONTAINERS or child.find([*SECTION_HEADINGS, *TEXT_BLOCKS]) is not None:
            flush()
            blocks.extend(_blocks(child))
        else:
            loose.append(child.get_text(" "))  # inline markup: part of the surrounding text
    flush()
    return blocks


def load_pdf(
    data: bytes, *, source: str, fallback_title: str, limits: PdfLimits | None = None
) -> LoadedDocument:
    """Extract each page's text layer with pypdf; pages keep their 1-based number."""
    import pypdf

    limits = limits or PdfLimits()
    with pypdf.apply_configuration(
        array_maximum_element_count=limits.max_elements,
        dictionary_maximum_element_count=limits.max_elements,
    ):
        return _load_pdf(data, source=source, fallback_title=fallback_title, max_pages=limits.max_pages)


def _load_pdf(data: bytes, *, source: str, fallback_title: str, max_pages: int) -> LoadedDocument:
    import pypdf
    from pypdf.errors import LimitReachedError

    if not data:
        raise LoadError("empty file (0 bytes), not a PDF")
    if data[:1024].find(b"%PDF-") < 0:
        raise LoadError("not a PDF: no %PDF- header (another kind of file, named or served as a PDF?)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except LimitReachedError as exc:
        raise _limit_error(exc) from exc
    except Exception as exc:  # pypdf raises many exception types on damaged files
        raise LoadError(f"corrupt PDF, cannot be parsed ({_describe(exc)})") from exc
    if encrypted:
        try:
            opened = bool(reader.decrypt(""))
        except Exception as exc:
            raise LoadError(f"encrypted PDF that cannot be opened ({_describe(exc)})") from exc
        if not opened:
            raise LoadError("encrypted PDF: it needs a password; ingest a decrypted copy instead")
    try:
        page_count = len(reader.pages)
    except LimitReachedError as exc:
        raise _limit_error(exc) from exc
    except Exception as exc:
        raise LoadError(f"corrupt PDF, its page tree cannot be read ({_describe(exc)})") from exc
    if not page_count:
        raise LoadError("PDF has no pages")
    if page_count > max_pages:
        raise LoadError(
            f"PDF has {page_count} pages, over the limit of {max_pages}; "
            "raise DOCENT_MAX_PDF_PAGES to ingest it"
        )
    pages: list[Page] = []
    warnings: list[str] = []
    extraction_error: str | None = None
    for number in range(1, page_count + 1):
        try:
            raw = reader.pages[number - 1].extract_text() or ""
        except LimitReachedError as exc:
            raise _limit_error(exc) from exc
        except Exception as exc:
            extraction_error = extraction_error or _describe(exc)
            warnings.append(f"page {number}: text extraction failed ({_describe(exc)}); page skipped")
            continue
        text = _HYPHEN_BREAK.sub(r"\1", raw).strip()
        if text:
            pages.append(Page(text=text, page=number))
        else:
            warnings.append(f"page {number} has no text layer (scanned image?); OCR is not supported")
    if not pages and extraction_error is not None:
        raise LoadError(f"corrupt PDF, no page's text can be extracted ({extraction_error})")
    if not pages:
        raise LoadError(
            f"PDF has no text layer on any of its {page_count} page(s) (scanned?); OCR is not supported"
        )
    return LoadedDocument(
        source=source,
        title=_pdf_title(reader) or fallback_title,
        kind="pdf",
        pages=pages,
        page_count=page_count,
        warnings=warnings,
    )


def _limit_error(exc: LimitReachedError) -> LoadError:
    return LoadError(
        f"PDF exceeds a parser safety limit ({_describe(exc)}); "
        "if the file is trusted, raise DOCENT_PDF_MAX_ELEMENTS"
    )


def _pdf_title(reader: pypdf.PdfReader) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a damaged info dictionary only costs the title
        return ""
    return squash(str(title or ""))


def decode_text(data: bytes, *charsets: str | None) -> str:
    """Decode bytes: a BOM first, then the first known declared charset, then UTF-8, then windows-1252."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    for charset in charsets:
        if charset and (declared := _codec(charset)):
            return data.decode(declared, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _codec(charset: str) -> str | None:
    try:
        name = codecs.lookup(charset.strip().strip("\"'")).name
    except LookupError:
        return None
    if name in _WINDOWS_1252_ALIASES:
        return "cp1252"
    if name.startswith(("utf-16", "utf-32")):
        return None  # declared inside ASCII-compatible bytes without a BOM: cannot be true
    return name


def _describe(exc: Exception) -> str:
    text = squash(str(exc)) or type(exc).__name__
    return text if len(text) <= 160 else text[:159] + "…"


def _text_document(text: str, *, source: str, title: str) -> LoadedDocument:
    if not text.strip():
        raise LoadError("file is empty")
    return LoadedDocument(source=source, title=title, kind="text", pages=[Page(text=text)])
