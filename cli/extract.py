"""`docent extract`: the text of a file or URL exactly as `docent ingest` would index it, stored nowhere."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import JsonOption, fail

if TYPE_CHECKING:
    from ingest.document import LoadedDocument, Page


def extract(
    path_or_url: Annotated[str, typer.Argument(help="A file or an http(s) URL.", show_default=False)],
    as_json: JsonOption = False,
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private/--refuse-private",
            help="Also fetch URLs on loopback and private addresses, as `docent ingest` does.",
        ),
    ] = False,
    pdf_password: Annotated[
        list[str] | None,
        typer.Option(
            "--pdf-password",
            help="Password of an encrypted PDF, as `docent ingest` takes it (SECRET or NAME.pdf=SECRET).",
        ),
    ] = None,
) -> None:
    """Print what Docent reads from a file or URL, unit by unit (a page, section, slide or sheet), with OCR'd
    text and table rows as they would be indexed. Nothing is stored and no model is loaded; exit code 1
    when the source cannot be read."""
    import dataclasses
    import logging

    from core.settings import get_settings
    from ingest.document import LoadError, PdfPasswords
    from ingest.fetch import FetchPolicy
    from ingest.pipeline import extract as extract_document
    from ingest.pipeline import parse_options

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # font warnings are noise, as in `docent ingest`
    logging.getLogger("ingest.load").setLevel(logging.ERROR)  # a failed fetch's reason is the error itself
    settings = get_settings()
    policy = FetchPolicy.operator(settings, allow_private=allow_private)
    options = parse_options(settings)
    if pdf_password:
        options = dataclasses.replace(options, pdf_passwords=PdfPasswords.parse(pdf_password))
    try:
        document = extract_document(path_or_url, settings, policy, options)
    except LoadError as exc:
        fail(f"{path_or_url}: {exc}", code=1)
    if as_json:
        typer.echo(json.dumps(document_json(document), indent=2, ensure_ascii=False))
        return
    _print_text(document)


def document_json(document: LoadedDocument) -> dict[str, Any]:
    """The document as `docent extract --json` prints it."""
    return {
        "source": document.source,
        "title": document.title,
        "kind": document.kind,
        "page_count": document.page_count,
        "units": [
            {"page": p.page, "section": p.section, "ocr": p.ocr, "tables": p.tables, "text": p.text}
            for p in document.pages
        ],
        "warnings": document.warnings,
        "empty_pages": document.empty_pages,
    }


def _print_text(document: LoadedDocument) -> None:
    """Each unit under a header line on stdout; what was not read on stderr, so stdout is the text alone."""
    from rich.console import Console

    for index, page in enumerate(document.pages, start=1):
        typer.echo(f"— {unit_label(page, index, document.kind)} —")
        typer.echo(page.text)
        typer.echo()
    err = Console(stderr=True, soft_wrap=True)
    units = f"{len(document.pages)} unit(s)"
    err.print(f"{document.title} ({document.kind}, {units})", markup=False, highlight=False)
    if document.empty_pages:
        pages = ", ".join(map(str, document.empty_pages))
        err.print(f"no text on page(s) {pages}", markup=False, highlight=False, style="yellow")
    for warning in document.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False, style="yellow")


def unit_label(page: Page, index: int, kind: str) -> str:
    """Where a unit sits: "page 3 · Costs", "slide 2 · Results", "Prices (sheet)"; "unit 1" if nowhere."""
    parts: list[str] = []
    if page.page is not None:
        parts.append(f"{'slide' if kind == 'pptx' else 'page'} {page.page}")
    if page.section:
        parts.append(f"{page.section} (sheet)" if kind == "xlsx" else page.section)
    if page.ocr:
        parts.append("OCR")
    return " · ".join(parts) or f"unit {index}"
