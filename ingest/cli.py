"""`docent ingest`: fill a Chroma collection from URLs, files and directories, with progress and a summary."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from core.chunk_store import open_chunk_store
from core.providers import make_embedder
from core.settings import get_settings
from core.vectorstore import CollectionError
from ingest.pipeline import Ingestor, IngestSummary


def ingest(
    items: Annotated[
        list[str], typer.Argument(help="URLs, files (.html .htm .txt .md .pdf) or directories.")
    ],
    collection: Annotated[
        str | None, typer.Option(help="Chroma collection (default: DOCENT_COLLECTION).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ingest sources; a bad item is reported and the rest go on. Exit code 1 when any item failed."""
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

            summary = ingestor.run(items, collection=collection, on_progress=advance)
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
        ("pages", summary.pages),
        ("chunks added", summary.chunks_added),
        ("chunks skipped (already stored)", summary.chunks_skipped),
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
