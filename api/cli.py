"""The `docent` command: ingest, ask, serve, eval, sources, reindex and keys."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from api.app import NoKeysError, open_keyring
from api.keys_cli import keys_app
from api.logging_setup import logging_config
from core.checkpoints import open_checkpointer
from core.context import DocentContext
from core.services import open_services
from core.settings import get_settings
from evaluation.cli import evaluate
from graph.build import build_graph
from graph.turn import TurnResult, run_turn
from ingest.cli import ingest, reindex, sources_app

app = typer.Typer(
    help="Docent: ask questions about your web pages and PDFs, with citations.", no_args_is_help=True
)
app.command()(ingest)
app.command("eval")(evaluate)
app.command()(reindex)
app.add_typer(sources_app, name="sources")
app.add_typer(keys_app, name="keys")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    thread: Annotated[str | None, typer.Option(help="Continue this thread id.")] = None,
    k: Annotated[int | None, typer.Option(min=1, max=50, help="Passages to retrieve.")] = None,
    collection: Annotated[str | None, typer.Option(help="Collection to search.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the /invoke output object.")] = False,
) -> None:
    """Answer a question from the ingested documents, in-process, with the same graph the server runs."""
    result = asyncio.run(_ask(question, thread, DocentContext(k=k, collection=collection)))
    if as_json:
        typer.echo(json.dumps(result.output(), indent=2, ensure_ascii=False))
        return
    console = Console()
    console.print(result.answer, highlight=False)
    if result.citations:
        console.print()
    for citation in result.citations:
        name = Path(citation["source"]).name if "://" not in citation["source"] else citation["source"]
        page = f", page {citation['page']}" if citation["page"] is not None else ""
        console.print(f"[{citation['n']}] {name}{page} — {citation['title']}", highlight=False, markup=False)
    console.print(f"\nmodel: {result.model}  thread: {result.thread_id}", style="dim", highlight=False)


async def _ask(question: str, thread: str | None, context: DocentContext) -> TurnResult:
    settings = get_settings()
    services = await asyncio.to_thread(open_services, settings)
    try:
        async with open_checkpointer(settings) as checkpointer:
            graph = build_graph(services, checkpointer)
            return await run_turn(graph, question, thread_id=thread, context=context)
    finally:
        services.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API with uvicorn; logs are JSON lines (DOCENT_LOG_FORMAT=text: plain text)."""
    settings = get_settings()
    try:
        log_config = logging_config(settings)
        if settings.auth == "on":
            open_keyring(settings)  # the app checks again at start; this says it without a traceback
    except NoKeysError as exc:
        Console(stderr=True, soft_wrap=True).print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    # The observability middleware writes one access line per request (with its request id): not uvicorn.
    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, log_config=log_config, access_log=False
    )


def main() -> None:
    """Console-script entry point."""
    app()
