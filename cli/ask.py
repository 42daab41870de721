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
    as_json: Annotated[bool, typer.Option("--json", help="Print the /invoke output object.")] = False,
) -> None:
    """Answer a question from the ingested documents, with citations. In-process, with the same graph the
    server runs."""
    import asyncio
    import json

    from rich.console import Console

    from core.types import DocentContext

    result = asyncio.run(_ask(question, thread, DocentContext(k=k, collection=collection)))
    if as_json:
        typer.echo(json.dumps(result.response(), indent=2, ensure_ascii=False))
        return
    output = result.output
    console = Console()
    console.print(output["answer"], highlight=False)
    if output["citations"]:
        console.print()
    for citation in output["citations"]:
        name = Path(citation["source"]).name if "://" not in citation["source"] else citation["source"]
        page = f", page {citation['page']}" if citation["page"] is not None else ""
        console.print(f"[{citation['n']}] {name}{page} — {citation['title']}", highlight=False, markup=False)
    console.print(f"\nmodel: {output['model']}  thread: {result.thread_id}", style="dim", highlight=False)


async def _ask(question: str, thread: str | None, context: DocentContext) -> TurnResult:
    from core.settings import get_settings
    from graph.build import open_docent
    from graph.turn import run_turn

    async with open_docent(get_settings()) as docent:
        return await run_turn(docent.graph, question, thread_id=thread, context=context, gate=docent.turns)
