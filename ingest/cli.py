"""`docent ingest`, `docent sources …` and `docent reindex`: fill a collection from URLs, files and
directories, list and remove its sources, and re-embed it with another model."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from core.chunk_store import ChunkStore, open_chunk_store
from core.keyword_index import KeywordIndex
from core.providers import make_embedder
from core.settings import get_settings
from core.sources import SourceCatalog, SourceRecord
from core.vectorstore import CollectionError
from ingest.pipeline import Ingestor, IngestSummary
from ingest.reindex import reindex as reindex_collection

CollectionOption = Annotated[str | None, typer.Option(help="Chroma collection (default: DOCENT_COLLECTION).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def ingest(
    items: Annotated[
        list[str], typer.Argument(help="URLs, files (.html .htm .txt .md .pdf) or directories.")
    ],
    collection: CollectionOption = None,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Remove recorded sources that vanished from the given directories."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ingest sources; unchanged ones are skipped, changed ones replaced. Exit code 1 when any item failed."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # font warnings are noise; real failures are reported
    settings = get_settings()
    err = Console(stderr=True)
    embedder = make_embedder(settings)
    store = open_chunk_store(settings, model_id=embedder.model_id, dimension=embedder.dimension)
    ingestor = Ingestor(settings, embedder, store)
    # A live bar needs a terminal; in logs and pipes, each finished source gets its own line instead.
    as_lines = not as_json and not err.is_terminal
    progress = Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        console=err,
        disable=as_json or as_lines,
    )
    try:
        with progress:
            task = progress.add_task("", total=None)

            def advance(source: str, done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, description=_short(source))
                if as_lines:
                    err.print(
                        f"ingest {done}/{total} {source}", markup=False, highlight=False, soft_wrap=True
                    )

            summary = ingestor.run(items, collection=collection, on_progress=advance, prune=prune)
    except CollectionError as exc:  # a bad name, or a collection of another embedding model
        err.print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(Console(), summary)
    if summary.failures:
        raise typer.Exit(1)


def _short(source: str, width: int = 60) -> str:
    return source if len(source) <= width else "…" + source[-(width - 1) :]


def _print_summary(console: Console, summary: IngestSummary) -> None:
    console.print(
        f"Ingested into collection {summary.collection!r} in {summary.seconds:.1f}s",
        markup=False,
        highlight=False,
    )
    table = Table(show_header=False)
    for label, value in (
        ("sources ingested", summary.sources),
        ("sources unchanged (skipped)", summary.sources_unchanged),
        ("sources removed (--prune)", summary.sources_removed),
        ("pages", summary.pages),
        ("chunks added", summary.chunks_added),
        ("chunks skipped (already stored)", summary.chunks_skipped),
        ("chunks removed", summary.chunks_removed),
        ("failures", len(summary.failures)),
    ):
        table.add_row(label, str(value))
    console.print(table)
    # Sources and reasons are user data: never markup (a file may be named "[b].pdf"), never wrapped mid-path.
    for style, label, problems in (
        ("yellow", "warning", summary.warnings),
        ("dim", "ignored", summary.ignored),
        ("red", "failed", summary.failures),
    ):
        for problem in problems:
            line = Text.assemble((label, style), f" {problem.source}: {problem.reason}")
            console.print(line, soft_wrap=True, highlight=False)


sources_app = typer.Typer(help="List, show and remove ingested sources.", no_args_is_help=True)


def _catalog() -> SourceCatalog:
    """Source records only: no model, no Chroma (fast)."""
    return SourceCatalog(KeywordIndex(get_settings().keyword_db))


def _find(catalog: SourceCatalog, collection: str, ref: str) -> SourceRecord:
    """A source by id, or by its URI / file path."""
    record = catalog.get(collection, ref) or catalog.by_uri(collection, ref)
    if record is None and not ref.startswith(("http://", "https://")):
        record = catalog.by_uri(collection, str(Path(ref).expanduser().resolve()))
    if record is None:
        Console(stderr=True).print(
            f"error: no source {ref!r} in collection {collection!r} (see `docent sources list`)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    return record


@sources_app.command("list")
def list_sources(collection: CollectionOption = None, as_json: JsonOption = False) -> None:
    """Every source of a collection: id, status, chunks, when ingested, and the URI."""
    name = collection or get_settings().collection
    records = _catalog().list(name)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], indent=2, ensure_ascii=False))
        return
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
) -> None:
    """One source's record, as JSON."""
    record = _find(_catalog(), collection or get_settings().collection, source)
    typer.echo(json.dumps(record.to_dict(), indent=2, ensure_ascii=False))


@sources_app.command("remove")
def remove_source(
    source: Annotated[str, typer.Argument(help="Source id, URL or file path.")],
    collection: CollectionOption = None,
) -> None:
    """Remove a source's chunks from both indexes, and its record."""
    name = collection or get_settings().collection
    store = _open_store()
    try:
        record = _find(store.sources, name, source)
        removed = store.remove_source(name, record.uri)
    except CollectionError as exc:
        _fail(exc)
    finally:
        store.close()
    typer.echo(f"removed {record.uri} ({removed} chunks) from collection {name!r}")


def reindex(
    collection: CollectionOption = None,
    force: Annotated[bool, typer.Option(help="Re-embed even if the model has not changed.")] = False,
) -> None:
    """Re-embed every chunk of a collection with the configured embedder, from the text already stored."""
    settings = get_settings()
    name = collection or settings.collection
    embedder = make_embedder(settings)
    store = open_chunk_store(settings, model_id=embedder.model_id, dimension=embedder.dimension)
    err = Console(stderr=True)
    try:
        result = reindex_collection(
            store,
            embedder,
            name,
            force=force,
            on_progress=lambda done, total: err.print(f"reindex {done}/{total}", highlight=False),
        )
    except CollectionError as exc:
        _fail(exc)
    finally:
        store.close()
    if result.skipped:
        typer.echo(f"collection {name!r} is already embedded with {result.model!r}; nothing to do")
    else:
        typer.echo(
            f"re-embedded {result.chunks} chunks of collection {name!r} with {result.model!r} "
            f"(was {result.previous_model!r})"
        )


def _open_store() -> ChunkStore:
    settings = get_settings()
    embedder = make_embedder(settings)
    return open_chunk_store(settings, model_id=embedder.model_id, dimension=embedder.dimension)


def _fail(exc: Exception) -> NoReturn:
    Console(stderr=True).print(Text.assemble(("error:", "red"), f" {exc}"), highlight=False)
    raise typer.Exit(2) from exc
