"""`docent workspaces list`: each workspace with its keys and collections, read from the keys file, Chroma
and the source records (what `GET /workspaces` answers an admin key)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.common import fail

workspaces_app = typer.Typer(help="List workspaces: their keys and collections.", no_args_is_help=True)


@workspaces_app.command("list")
def list_workspaces(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every workspace a key or a stored collection names, with its key count and collections."""
    from core.retrieval.vector_store import open_chroma
    from core.services import Services
    from core.settings import get_settings
    from core.storage.db import SchemaError
    from core.storage.keys import KeyFileError, KeyTable, all_keys
    from core.storage.workspaces import split_stored

    settings = get_settings()
    services = Services(settings)
    try:
        try:
            specs = all_keys(settings, KeyTable(services.database))
        except (KeyFileError, SchemaError) as exc:
            fail(exc, code=1)
        rows: dict[str, dict[str, set[str]]] = {}
        for spec in specs:
            rows.setdefault(spec.workspace, {"keys": set(), "collections": set()})["keys"].add(spec.name)
        stored = {c.name for c in open_chroma(settings).list_collections()}
        stored |= set(services.sources.collections())
    finally:
        services.close()
    for name in stored:
        if name.endswith(".reindex"):
            continue
        workspace, collection = split_stored(name)
        rows.setdefault(workspace, {"keys": set(), "collections": set()})["collections"].add(collection)
    listed = [
        {"name": name, "keys": sorted(row["keys"]), "collections": sorted(row["collections"])}
        for name, row in sorted(rows.items())
    ]
    if as_json:
        typer.echo(json.dumps({"workspaces": listed}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("workspace", "keys", "collections", title="workspaces")
    for row in listed:
        table.add_row(str(row["name"]), ", ".join(row["keys"]), ", ".join(row["collections"]))
    Console().print(table)
