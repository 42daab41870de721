"""`docent ingest` and `docent reindex`: fill a collection from URLs, files and directories, and re-embed it
with another model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import CollectionOption, fail

if TYPE_CHECKING:
    from rich.console import Console

    from ingest.pipeline import IngestSummary


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
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private/--refuse-private",
            help="Also fetch URLs on loopback and private addresses (an intranet); by default the server's"
            " address check applies (DOCENT_FETCH_ALLOW lists exceptions).",
        ),
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="Ingest through a running Docent server (e.g. http://127.0.0.1:8000): POST /ingest, then"
            " follow the job. Files are uploaded; the server fetches the URLs.",
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", envvar="DOCENT_API_KEY", help="API key with the `ingest` scope, for --server."),
    ] = None,
) -> None:
    """Ingest URLs, files and directories. Unchanged sources are skipped, changed ones replaced; exit code 1
    when any item failed. While `docent serve` uses the same data dir, ingest through it with --server."""
    if server is not None:
        if prune:
            fail("--prune works on this machine's stores only; it cannot be used with --server")
        _ingest_through(server, key, items, collection, as_json)
        return
    import json
    import logging

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cli.server_lock import DataDirBusyError, hold_until_exit
    from core.retrieval.vector_store import CollectionError
    from core.services import Services
    from core.settings import get_settings
    from ingest.fetch import FetchPolicy
    from ingest.pipeline import Ingestor

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # font warnings are noise; real failures are reported
    settings = get_settings()
    err = Console(stderr=True)
    try:  # held until the process exits: neither may a server open the stores meanwhile
        if not settings.server_mode:  # server mode's stores are servers themselves, shared by design
            hold_until_exit(settings.data_dir, "ingest")
    except DataDirBusyError as exc:
        fail(exc)
    services = Services(settings)
    ingestor = Ingestor(settings, services.embedder, services.store)
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

            summary = ingestor.run(
                items,
                collection=collection,
                on_progress=advance,
                prune=prune,
                fetch_policy=FetchPolicy.operator(settings, allow_private=allow_private),
            )
    except CollectionError as exc:  # a bad name, or a collection of another embedding model
        fail(exc)
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_summary(Console(), summary)
    if summary.failures:
        raise typer.Exit(1)


def _ingest_through(
    server: str, key: str | None, items: list[str], collection: str | None, as_json: bool
) -> None:
    """POST the items to a server's /ingest (local files uploaded, directories walked here), then poll
    GET /ingest/{id} with a progress bar until the job ends; exit code 1 when any source failed."""
    import base64
    import json
    import time
    from pathlib import Path

    import httpx
    from rich.console import Console

    from ingest.pipeline import expand_inputs, is_url

    inputs = expand_inputs(items)
    if inputs.failures:
        fail("; ".join(f"{p.source}: {p.reason}" for p in inputs.failures))
    urls = [t for t in inputs.targets if is_url(t)]
    files: list[dict[str, str]] = []
    for target in inputs.targets:
        if not is_url(target):
            path = Path(target)
            if not path.is_file():
                fail(f"{target}: no such file")
            files.append({"name": path.name, "content_base64": base64.b64encode(path.read_bytes()).decode()})
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body: dict[str, Any] = {"urls": urls, "files": files}
    if collection:
        body["collection"] = collection
    base = server.rstrip("/")
    err = Console(stderr=True)
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        try:
            started = client.post("/ingest", json=body)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the server at {base}: {exc}")
        if started.status_code != 202:
            fail(f"the server refused the job (HTTP {started.status_code}): {_detail(started)}")
        job: dict[str, Any] = started.json()
        shown = 0
        while job["status"] in ("queued", "running"):
            time.sleep(0.5)
            polled = client.get(f"/ingest/{job['id']}")
            if polled.status_code != 200:
                fail(f"lost job {job['id']} (HTTP {polled.status_code}): {_detail(polled)}")
            job = polled.json()
            for result in job["results"][shown:]:
                done = f"{job['done']}/{job['total']}" if job["total"] is not None else str(job["done"])
                err.print(f"ingest {done} {result['source']}", markup=False, highlight=False, soft_wrap=True)
            shown = len(job["results"])
    if as_json:
        typer.echo(json.dumps(job, indent=2))
    else:
        summary = job["summary"] or {}
        typer.echo(
            f"job {job['id']} {job['status']}: {summary.get('sources', 0)} sources,"
            f" {summary.get('chunks_added', 0)} chunks added, {len(summary.get('failures', []))} failures"
        )
        for problem in summary.get("failures", []):
            typer.echo(f"failed {problem['source']}: {problem['reason']}")
    if job["status"] != "done":
        fail(f"job {job['id']} ended {job['status']}" + (f": {job['error']}" if job["error"] else ""), code=1)
    if (job["summary"] or {}).get("failures"):
        raise typer.Exit(1)


def _detail(response: Any) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return str(response.text)[:200]


def _short(source: str, width: int = 60) -> str:
    return source if len(source) <= width else "…" + source[-(width - 1) :]


def _print_summary(console: Console, summary: IngestSummary) -> None:
    from rich.table import Table
    from rich.text import Text

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


def reindex(
    collection: CollectionOption = None,
    force: Annotated[bool, typer.Option(help="Re-embed even if the model has not changed.")] = False,
) -> None:
    """Re-embed a collection with the configured embedder. Every chunk, from the text already stored."""
    from rich.console import Console

    from core.retrieval.vector_store import CollectionError
    from core.services import Services
    from core.settings import get_settings
    from ingest.reindex import reindex as reindex_collection

    settings = get_settings()
    name = collection or settings.collection
    if not settings.server_mode:
        from cli.server_lock import DataDirBusyError, hold_until_exit

        try:
            hold_until_exit(settings.data_dir, "reindex")
        except DataDirBusyError as exc:
            fail(exc)
    services = Services(settings)
    err = Console(stderr=True)
    try:
        result = reindex_collection(
            services.store,
            services.embedder,
            name,
            force=force,
            on_progress=lambda done, total: err.print(f"reindex {done}/{total}", highlight=False),
        )
    except CollectionError as exc:
        fail(exc)
    finally:
        services.close()
    if result.skipped:
        typer.echo(f"collection {name!r} is already embedded with {result.model!r}; nothing to do")
    else:
        typer.echo(
            f"re-embedded {result.chunks} chunks of collection {name!r} with {result.model!r} "
            f"(was {result.previous_model!r})"
        )
