"""What the command groups share: the collection and JSON options, and the one way to report an error."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

CollectionOption = Annotated[str | None, typer.Option(help="Chroma collection (default: DOCENT_COLLECTION).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: object, *, code: int = 2) -> NoReturn:
    """Print `error: <message>` on stderr (never as markup) and exit with `code`."""
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, soft_wrap=True).print(
        Text.assemble(("error:", "red"), f" {message}"), highlight=False
    )
    raise typer.Exit(code)
