"""`docent sources …`: list, show and remove the ingested sources of a collection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import CollectionOption, JsonOption, fail

if TYPE_CHECKING:
    from rich.table import Table

    from core.storage.sources import SourceCatalog, SourceRecord

sources_app = typer.Typer(help="List, show and remove ingested sources.", no_args_is_help=True)


def _catalog() -> SourceCatalog:
    """Source records only: no model, no Chroma (fast)."""
    from core.settings import get_settings
    from core.storage.db import open_database
    from core.storage.sources import SourceCatalog

    return SourceCatalog(open_database(get_settings()))


def _find(catalog: SourceCatalog, collection: str, ref: str) -> SourceRecord:
    """A source by id, or by its URI / file path."""
    record = catalog.get(collection, ref) or catalog.by_uri(collection, ref)
    if record is None and not ref.startswith(("http://", "https://")):
        record = catalog.by_uri(collection, str(Path(ref).expanduser().resolve()))
    if record is None:
        from rich.console import Console

        Console(stderr=True).print(
            f"error: no source {ref!r} in collection {collection!r} (see `docent sources list`)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    return record


@sources_app.command("list")
def list_sources(collection: CollectionOption = None, as_json: JsonOption = False) -> None:
    """List a collection's sources. Each with its id, status, chunks, when ingested, and the URI."""
    from core.settings import get_settings

    name = collection or get_settings().collection
    records = _catalog().list(name)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("id", "status", "kind", "pages", "chunks", "ingested", "uri")
    for r in records:
        status = "failed" if r.last_error else "ok"
        table.add_row(r.id, status, r.kind, str(r.pages), str(r.chunks), r.ingested_at or "-", Text(r.uri))
    Console().print(table)
    Console().print(f"{len(records)} source(s) in collection {name!r}", markup=False, highlight=False)


@sources_app.command("show")
def show_source(
    source: Annotated[str, typer.Argument(help="Source id, URL or file path.")],
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """One source's record and its extraction report: pages, characters per page, pages with no text,
    pages OCR'd, tables found."""
    from core.settings import get_settings

    record = _find(_catalog(), collection or get_settings().collection, source)
    if as_json:
        typer.echo(json.dumps(record.to_dict(), indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    Console().print(_record_table(record))


def _record_table(record: SourceRecord) -> Table:
    """A record as label/value rows; the extraction report's rows follow when it has one."""
    from rich.table import Table
    from rich.text import Text

    from ingest.report import ExtractionReport

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")  # a long URI or hash wraps, never cut
    status = f"failed: {record.last_error}" if record.last_error else "ok"
    rows: list[tuple[str, str]] = [
        ("id", record.id),
        ("uri", record.uri),
        ("title", record.title or "-"),
        ("kind", record.kind or "-"),
        ("status", status),
        ("chunks", str(record.chunks)),
        ("ingested", record.ingested_at or "never"),
        ("embedding model", record.embedding_model),
        ("content hash", record.content_hash or "-"),
    ]
    if record.report is None:
        rows.append(("extraction report", "none (ingested before reports were kept: ingest it again)"))
    else:
        report = ExtractionReport.from_dict(record.report)
        rows += [
            ("pages", str(report.pages)),
            ("sections", str(report.units)),
            ("characters", f"{report.characters:,} ({report.characters_per_page:,} per page)"),
            ("pages with no text", _pages(report.empty_pages, report.empty_page_numbers)),
            ("pages OCR'd", _pages(report.ocr_pages, report.ocr_page_numbers)),
            ("tables found", str(report.tables)),
            ("warnings", str(report.warnings)),
        ]
        rows += [("", f"- {message}") for message in report.warning_messages]
    for label, value in rows:
        table.add_row(label, Text(value))  # values are user data: never markup
    return table


def _pages(count: int, numbers: list[int]) -> str:
    """`2 (pages 2, 43)`, or `0`; lists are cut at ingest/report.py's LISTED_PAGES."""
    if not count:
        return "0"
    listed = ", ".join(str(n) for n in numbers) + (", …" if count > len(numbers) else "")
    return f"{count} (page {listed})" if count == 1 else f"{count} (pages {listed})"


@sources_app.command("remove")
def remove_source(
    source: Annotated[str, typer.Argument(help="Source id, URL or file path.")],
    collection: CollectionOption = None,
) -> None:
    """Remove a source's chunks from both indexes, and its record."""
    from core.retrieval.vector_store import CollectionError
    from core.services import Services
    from core.settings import get_settings

    name = collection or get_settings().collection
    services = Services(get_settings())
    try:
        record = _find(services.sources, name, source)
        removed = services.store.remove_source(name, record.uri)
    except CollectionError as exc:
        fail(exc)
    finally:
        services.close()
    typer.echo(f"removed {record.uri} ({removed} chunks) from collection {name!r}")
