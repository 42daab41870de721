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
        list[str],
        typer.Argument(help="URLs, files (.pdf .html .md .txt .docx .pptx .xlsx .csv) or directories."),
    ],
    collection: CollectionOption = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Remove recorded sources that vanished from the given directories (with --crawl: pages a"
            " complete crawl no longer reaches).",
        ),
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
    crawl: Annotated[
        bool,
        typer.Option(
            "--crawl",
            help="Crawl each URL: follow its links and sitemap under its folder, honouring robots.txt; each"
            " page is its own source.",
        ),
    ] = False,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth", min=0, max=20, help="With --crawl: links followed from the root at most [3]."
        ),
    ] = None,
    max_pages: Annotated[
        int | None,
        typer.Option("--max-pages", min=1, max=100_000, help="With --crawl: pages per root at most [100]."),
    ] = None,
    same_host: Annotated[
        bool,
        typer.Option(
            "--same-host", help="With --crawl: follow links anywhere on the root's host, not only its folder."
        ),
    ] = False,
    pdf_password: Annotated[
        list[str] | None,
        typer.Option(
            "--pdf-password",
            help="Password of encrypted PDFs (repeatable): SECRET is tried on every PDF of the run,"
            " NAME.pdf=SECRET on that file only. Never stored or logged.",
        ),
    ] = None,
) -> None:
    """Ingest URLs, files and directories. Unchanged sources are skipped, changed ones replaced; exit code 1
    when any item failed. While `docent serve` uses the same data dir, ingest through it with --server."""
    if not crawl and (depth is not None or max_pages is not None or same_host):
        fail("--depth, --max-pages and --same-host need --crawl")
    if server is not None:
        if prune:
            fail("--prune works on this machine's stores only; it cannot be used with --server")
        if crawl:
            fail("--crawl runs on this machine; it cannot be used with --server")
        if pdf_password:
            fail("--pdf-password opens PDFs on this machine; it cannot be used with --server")
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
    from ingest.crawl import CrawlOptions
    from ingest.document import PdfPasswords
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
                crawl=CrawlOptions.from_settings(
                    settings, depth=depth, max_pages=max_pages, same_host=same_host
                )
                if crawl
                else None,
                pdf_passwords=PdfPasswords.parse(pdf_password or []),
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
    """POST the items to a server's /ingest (local files uploaded as multipart/form-data, streamed from disk;
    directories walked here), then poll GET /ingest/{id} until the job ends; exit code 1 when any source
    failed."""
    import json
    import time
    from contextlib import ExitStack
    from pathlib import Path

    import httpx
    from rich.console import Console

    from ingest.pipeline import expand_inputs, is_url

    inputs = expand_inputs(items)
    if inputs.failures:
        fail("; ".join(f"{p.source}: {p.reason}" for p in inputs.failures))
    urls = [t for t in inputs.targets if is_url(t)]
    files = [Path(t) for t in inputs.targets if not is_url(t)]
    if missing := [path for path in files if not path.is_file()]:
        fail(f"{missing[0]}: no such file")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    fields: dict[str, Any] = {"collection": collection} if collection else {}
    base = server.rstrip("/")
    err = Console(stderr=True)
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client, ExitStack() as opened:
        try:
            if files:
                parts = [("file", (path.name, opened.enter_context(path.open("rb")))) for path in files]
                started = client.post("/ingest", data={**fields, "url": urls}, files=parts)
            else:
                started = client.post("/ingest", json={**fields, "urls": urls})
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


REPORTS_SHOWN = 10
"""Up to this many read sources each get their extraction report's line; beyond, only those with pages
that had no text or needed OCR (`docent sources show` has every report)."""


def _print_summary(console: Console, summary: IngestSummary) -> None:
    from rich.table import Table
    from rich.text import Text

    from ingest.pipeline import Problem

    console.print(
        _headline(summary), markup=False, highlight=False, style="red" if summary.all_failed else None
    )
    table = Table(show_header=False)
    for label, value in (
        ("sources ingested", summary.sources),
        ("sources unchanged (skipped)", summary.sources_unchanged),
        ("sources duplicating another (skipped)", summary.sources_duplicate),
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
    read = [r for r in summary.results if r.report is not None and r.status in ("added", "updated")]
    for result in read:
        assert result.report is not None
        notable = result.report.get("empty_pages") or result.report.get("ocr_pages")
        if len(read) <= REPORTS_SHOWN or notable:
            line = Text.assemble(("read", "green"), f" {result.source}: {_report_line(result.report)}")
            console.print(line, soft_wrap=True, highlight=False)
    duplicates = [Problem(r.source, r.reason or "") for r in summary.results if r.status == "duplicate"]
    for style, label, problems in (
        ("yellow", "warning", summary.warnings),
        ("dim", "ignored", summary.ignored),
        ("cyan", "duplicate", duplicates),
        ("red", "failed", summary.failures),
    ):
        for problem in problems:
            line = Text.assemble((label, style), f" {problem.source}: {problem.reason}")
            console.print(line, soft_wrap=True, highlight=False)


def _headline(summary: IngestSummary) -> str:
    """What the run did, in one line: a run whose every item failed says so."""
    where = f"collection {summary.collection!r}"
    failed = len(summary.failures)
    if summary.all_failed:
        which = "the only item" if failed == 1 else f"all {failed} items"
        return f"Nothing ingested into {where}: {which} failed ({summary.seconds:.1f}s)"
    line = f"Ingested into {where} in {summary.seconds:.1f}s"
    items = sum(1 for r in summary.results if r.status != "removed")
    return line + (f"; {failed} of {items} items failed" if failed else "")


def _report_line(report: dict[str, Any]) -> str:
    """A source's extraction report in one line (ingest/report.py)."""
    from ingest.report import ExtractionReport

    return ExtractionReport.from_dict(report).headline()


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
