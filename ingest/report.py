"""The extraction report of a source: what Docent read from it, in numbers a user can check at a glance
(pages, characters per page, pages with no text, pages OCR'd, tables), stored with its record.

A source whose report shows no characters at all is a failure (the pipeline says why with `nothing_read`),
never a source "ok" with zero chunks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ingest.document import LoadedDocument

LISTED_PAGES = 50
"""At most this many page numbers are listed per kind (empty, OCR'd); the counts are always whole."""
LISTED_WARNINGS = 10
"""At most this many warnings are kept, each as the loader wrote it."""
_COUNTS = (
    "pages",
    "units",
    "characters",
    "characters_per_page",
    "empty_pages",
    "ocr_pages",
    "tables",
    "warnings",
)


@dataclass(frozen=True)
class ExtractionReport:
    """What one source's loader extracted.

    `pages` is the source's page count (a web page or a text file is one page, a slide deck has one per
    slide); `units` the pieces chunks may not straddle (a PDF page, a section, a slide, a sheet).
    """

    pages: int
    units: int
    characters: int
    characters_per_page: int
    empty_pages: int
    ocr_pages: int
    tables: int
    warnings: int
    empty_page_numbers: list[int] = field(default_factory=list)
    """The first LISTED_PAGES 1-based pages with no text, even after OCR."""
    ocr_page_numbers: list[int] = field(default_factory=list)
    """The first LISTED_PAGES pages whose text was recognised from their image."""
    warning_messages: list[str] = field(default_factory=list)
    """The first LISTED_WARNINGS warnings."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in the source's record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractionReport:
        """The report a record holds (keys it does not know are ignored, missing ones are zero)."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**{**dict.fromkeys(_COUNTS, 0), **known})

    @property
    def read_nothing(self) -> bool:
        """No text at all came out of the source."""
        return self.characters == 0

    def headline(self) -> str:
        """One line: `44 pages, 2,806 characters/page, 2 empty, 1 OCR'd, 3 tables, 1 warning`."""
        parts = [
            _count(self.pages, "page"),
            f"{self.characters_per_page:,} characters/page",
        ]
        if self.units != self.pages:
            parts.insert(1, _count(self.units, "section"))
        if self.empty_pages:
            parts.append(f"{self.empty_pages} empty")
        if self.ocr_pages:
            parts.append(f"{self.ocr_pages} OCR'd")
        parts.append(_count(self.tables, "table"))
        if self.warnings:
            parts.append(_count(self.warnings, "warning"))
        return ", ".join(parts)

    def nothing_read(self) -> str:
        """Why a source with no text fails, for its run's summary and record."""
        if self.empty_pages and self.empty_pages >= self.pages:
            pages = "the page has" if self.pages == 1 else f"all {self.pages} pages have"
            return (
                f"no text could be extracted: {pages} no text, even after OCR (images only?);"
                " `docent extract` shows what was read"
            )
        return "no text could be extracted: the source is empty once markup and whitespace are removed"


def extraction_report(document: LoadedDocument) -> ExtractionReport:
    """The report of a loaded document, from its pages, page count, empty pages and warnings."""
    characters = sum(len(unit.text.strip()) for unit in document.pages)
    pages = max(document.page_count, 1)
    empty = sorted(set(document.empty_pages))
    ocr: list[int] = []
    for index, unit in enumerate(document.pages, start=1):
        if unit.ocr:
            number = unit.page if unit.page is not None else index
            if number not in ocr:
                ocr.append(number)
    ocr.sort()
    return ExtractionReport(
        pages=pages,
        units=len(document.pages),
        characters=characters,
        characters_per_page=round(characters / pages),
        empty_pages=len(empty),
        ocr_pages=len(ocr),
        tables=sum(unit.tables for unit in document.pages),
        warnings=len(document.warnings),
        empty_page_numbers=empty[:LISTED_PAGES],
        ocr_page_numbers=ocr[:LISTED_PAGES],
        warning_messages=list(document.warnings[:LISTED_WARNINGS]),
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
