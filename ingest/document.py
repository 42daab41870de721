"""What a loader makes of a source: pages of clean text with their place in it, and the bytes it came from.

The formats in `ingest/formats/` turn a `RawSource` into a `LoadedDocument`; `ingest/split.py` chunks it.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Literal

from core.text import squash

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# Browsers read these labels as windows-1252, a superset that also maps 0x80-0x9F (e.g. the euro sign).
_WINDOWS_1252_ALIASES = frozenset({"latin-1", "iso8859-1", "ascii", "cp1252"})


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
    ocr: bool = False
    """The text was recognised from the page's image (no text layer)."""
    tables: int = 0
    """How many tables this unit's text holds (each written by `table_text`)."""


@dataclass
class LoadedDocument:
    """A source's text, ready to split."""

    source: str
    title: str
    kind: str
    pages: list[Page]
    page_count: int = 1
    warnings: list[str] = field(default_factory=list)
    empty_pages: list[int] = field(default_factory=list)
    """1-based numbers of the pages from which no text could be had (not even by OCR)."""


@dataclass(frozen=True)
class PdfLimits:
    """How much of a PDF Docent will parse.

    pypdf's defaults refuse arrays or dictionaries over 100,000 elements (LimitReachedError); real documents
    with huge font-width or annotation arrays trip that, so the element limit here is deliberately higher.
    """

    max_pages: int = 2000
    max_elements: int = 1_000_000


@dataclass(frozen=True)
class PdfPasswords:
    """Passwords for encrypted PDFs (`docent ingest --pdf-password`): never logged, never stored.

    `for_all` are tried on every encrypted PDF of the run; `by_name` on the file (or URL) of that name, first.
    """

    for_all: tuple[str, ...] = field(default=(), repr=False)
    by_name: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(file name or path ending, password) pairs."""

    @classmethod
    def parse(cls, values: list[str]) -> PdfPasswords:
        """`SECRET` for every PDF, `NAME.pdf=SECRET` for one file (by name or path); `*=SECRET` is for every
        PDF too (a password that itself looks like `x.pdf=y`)."""
        for_all: list[str] = []
        by_name: list[tuple[str, str]] = []
        for value in values:
            name, sep, secret = value.partition("=")
            if sep and name == "*":
                for_all.append(secret)
            elif sep and name.lower().endswith(".pdf"):
                by_name.append((name, secret))
            else:
                for_all.append(value)
        return cls(tuple(for_all), tuple(by_name))

    def __bool__(self) -> bool:
        return bool(self.for_all or self.by_name)

    def candidates(self, source: str, name: str) -> list[str]:
        """The passwords to try on this source, its own first."""
        own = [
            secret
            for key, secret in self.by_name
            if key in (name, source) or source.endswith("/" + key.lstrip("/"))
        ]
        return [*own, *self.for_all]


@dataclass(frozen=True)
class OcrOptions:
    """Text recognition for PDF pages without a text layer (ingest/formats/ocr.py), bounded per document."""

    mode: Literal["auto", "off"] = "auto"
    """`auto`: pages with no text but an image are recognised; `off`: never."""
    max_pages: int = 50
    """Pages recognised per document at most; later ones are reported as empty."""
    timeout_s: float = 300.0
    """Seconds of recognition per document at most; pages left are reported as empty."""
    dpi: int = 300
    """Render resolution (capped so that no page image exceeds `max_pixels`); measured in bench/ocr.py."""
    max_pixels: int = 12_000_000


@dataclass(frozen=True)
class RawSource:
    """A source's bytes before parsing, and the kind of parser they need (a key of `formats.PARSERS`)."""

    source: str
    data: bytes
    kind: str
    name: str
    charset: str | None = None


@dataclass(frozen=True)
class OfficeLimits:
    """How much of an Office file (a zip of XML parts) or a table Docent will read.

    The archive limits are checked on the zip's directory before anything is unpacked (a zip bomb is refused
    unread); the row, cell and slide limits stop reading with a warning, keeping what came before.
    """

    max_unzipped_bytes: int = 512 * 2**20
    """All members of a .docx/.pptx/.xlsx together, uncompressed (parsers hold them all in memory)."""
    max_part_bytes: int = 64 * 2**20
    """One XML part, uncompressed (an XML tree takes several times its size in memory)."""
    max_members: int = 10_000
    max_slides: int = 2_000
    max_rows: int = 100_000
    """Rows read per sheet or CSV file."""
    max_cells: int = 2_000_000
    """Cells read per file, empty ones included."""
    rows_per_unit: int = 50
    """A long table becomes units of this many rows, each starting with the header row."""


@dataclass(frozen=True)
class ParseOptions:
    """How the parsers treat what they read (limits, passwords, OCR), from settings and the command line."""

    pdf: PdfLimits = field(default_factory=lambda: PdfLimits())
    pdf_passwords: PdfPasswords = field(default_factory=lambda: PdfPasswords())
    ocr: OcrOptions = field(default_factory=lambda: OcrOptions())
    office: OfficeLimits = field(default_factory=lambda: OfficeLimits())
    html_main_content: bool = True
    """HTML keeps the page's main content only (trafilatura), not its navigation, footers and banners."""


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


def describe(exc: Exception) -> str:
    text = squash(str(exc)) or type(exc).__name__
    return text if len(text) <= 160 else text[:159] + "…"


def table_text(rows: list[list[str]]) -> str:
    """A table as text, one row per line and cells separated by " | ".

    When the first row is a header, every later cell carries its column's label ("2022: 17,606"), so a figure
    stays beside its row and column labels wherever a chunk boundary falls. Empty rows are dropped.
    """
    cleaned = [[squash(cell) for cell in row] for row in rows]
    cleaned = [row for row in cleaned if any(row)]
    if not cleaned:
        return ""
    header, body = cleaned[0], cleaned[1:]
    lines = [" | ".join(cell for cell in header if cell)]
    for row in body:
        cells = []
        for index, cell in enumerate(row):
            label = header[index] if index < len(header) and index > 0 else ""
            if cell:
                cells.append(f"{label}: {cell}" if label and label != cell else cell)
        lines.append(" | ".join(cells))
    return "\n".join(line for line in lines if line)
