"""`docent ask`: answer a question in-process, with the same graph the server runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from core.types import DocentContext, TurnResult


def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    thread: Annotated[str | None, typer.Option(help="Continue this thread id.")] = None,
    k: Annotated[int | None, typer.Option(min=1, max=50, help="Passages to retrieve.")] = None,
    collection: Annotated[str | None, typer.Option(help="Collection to search.")] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="Search only matching chunks: key=value pairs, comma-separated or repeated, of source, kind,"
            " title, section, page (12 or 50-60), ingested_after, ingested_before (ISO dates), e.g."
            " source=report.pdf,page=3-5.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the /invoke output object.")] = False,
) -> None:
    """Answer a question from the ingested documents, with citations. In-process, with the same graph the
    server runs."""
    import asyncio
    import json

    from rich.console import Console

    from core.retrieval.filters import parse_filter
    from core.types import DocentContext

    try:
        where = parse_filter(",".join(filters)) if filters else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filter") from exc
    context = DocentContext(k=k, collection=collection, filter=where)
    result = asyncio.run(_ask(question, thread, context))
    if as_json:
        typer.echo(json.dumps(result.response(), indent=2, ensure_ascii=False))
        return
    output = result.output
    console = Console()
    console.print(output["answer"], highlight=False)
    cited = [c for c in output["citations"] if c["cited"]]  # `--json` lists the uncited relevant ones too
    if cited:
        console.print()
    for citation in cited:
        name = Path(citation["source"]).name if "://" not in citation["source"] else citation["source"]
        page = f", page {citation['page']}" if citation["page"] is not None else ""
        check = " (not supported by this passage)" if citation.get("supported") is False else ""
        line = f"[{citation['n']}] {name}{page} — {citation['title']}{check}"
        console.print(line, highlight=False, markup=False)
    console.print(f"\nmodel: {output['model']}  thread: {result.thread_id}", style="dim", highlight=False)


async def _ask(question: str, thread: str | None, context: DocentContext) -> TurnResult:
    from core.settings import get_settings
    from graph.build import open_docent
    from graph.turn import run_turn

    async with open_docent(get_settings()) as docent:
        return await run_turn(
            docent.graph,
            question,
            thread_id=thread,
            context=context,
            gate=docent.turns,
            cache=docent.services.answer_cache,
            records=docent.services.records,
        )
