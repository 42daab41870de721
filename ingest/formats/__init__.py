"""One parser per kind of source; `ingest.load.parse` dispatches on `RawSource.kind`.

Each format's module imports its third-party parser inside its function, so reading and hashing a file (all an
unchanged re-ingest does) pays for none of them. To add a format: a module here with
`load(raw, options) -> LoadedDocument`, an entry in `PARSERS`, and its suffixes in `SUFFIX_KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable

from ingest.document import LoadedDocument, ParseOptions, RawSource


def _pdf(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    from ingest.formats.pdf import load_pdf

    return load_pdf(
        raw.data,
        source=raw.source,
        fallback_title=raw.name,
        limits=options.pdf,
        passwords=options.pdf_passwords.candidates(raw.source, raw.name),
        ocr=options.ocr,
    )


def _html(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    from ingest.formats.html import load_html

    return load_html(
        raw.data,
        source=raw.source,
        fallback_title=raw.name,
        encoding=raw.charset,
        main_content=options.html_main_content,
    )


def _text(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    from ingest.document import decode_text
    from ingest.formats.text import load_text

    return load_text(decode_text(raw.data, raw.charset), source=raw.source, title=raw.name)


def _markdown(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    from ingest.document import decode_text
    from ingest.formats.markdown import load_markdown

    return load_markdown(decode_text(raw.data, raw.charset), source=raw.source, fallback_title=raw.name)


def _docx(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    from ingest.formats.docx import load_docx

    return load_docx(raw.data, source=raw.source, fallback_title=raw.name, limits=options.office)


def _pptx(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    from ingest.formats.pptx import load_pptx

    return load_pptx(raw.data, source=raw.source, fallback_title=raw.name, limits=options.office)


def _csv(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    from ingest.formats.tables import load_csv

    return load_csv(
        raw.data, source=raw.source, fallback_title=raw.name, charset=raw.charset, limits=options.office
    )


def _xlsx(raw: RawSource, options: ParseOptions) -> LoadedDocument:
    from ingest.formats.tables import load_xlsx

    return load_xlsx(raw.data, source=raw.source, fallback_title=raw.name, limits=options.office)


Parser = Callable[[RawSource, ParseOptions], LoadedDocument]
PARSERS: dict[str, Parser] = {"pdf": _pdf, "html": _html, "text": _text}
PARSERS |= {"markdown": _markdown, "docx": _docx, "pptx": _pptx, "csv": _csv, "xlsx": _xlsx}
"""Parser by `RawSource.kind`."""

SUFFIX_KINDS: dict[str, str] = {".pdf": "pdf", ".html": "html", ".htm": "html", ".txt": "text"}
SUFFIX_KINDS |= {".md": "markdown", ".markdown": "markdown", ".docx": "docx", ".pptx": "pptx"}
SUFFIX_KINDS |= {".csv": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}
"""The kind of a local file by its lower-cased suffix; other suffixes are refused."""

CONTENT_TYPE_KINDS: dict[str, str] = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": "xlsx",
}
"""The kind of a fetched body by its content type, for the kinds `ingest.load` does not tell apart itself. A
body served as text/plain or application/octet-stream takes the kind of its URL's suffix among these kinds."""

LEGACY_CONTENT_TYPES: dict[str, str] = {
    "application/msword": ".doc",
    "application/vnd.ms-powerpoint": ".ppt",
    "application/vnd.ms-excel": ".xls",
}
"""Old binary Office formats served by content type: refused (`ingest.formats.ooxml.legacy_refusal`)."""
