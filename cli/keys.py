"""`docent keys`: create, list and revoke API keys, kept in the database (every replica reads them) as sha256
hashes only. Each key belongs to one workspace (`--workspace`, default `default`)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import fail

if TYPE_CHECKING:
    from core.settings import Settings
    from core.storage.keys import KeyTable, Scope

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def _scopes(value: str) -> list[Scope]:
    from core.storage.keys import SCOPES

    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [n for n in names if n not in SCOPES]
    if unknown or not names:
        raise typer.BadParameter(f"choose among {', '.join(SCOPES)} (comma-separated), got {value!r}")
    return [n for n in SCOPES if n in names]


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(help="Who the key is for (unique; the key's id owns its threads).")],
    scopes: Annotated[
        str, typer.Option(help="Comma list among query, ingest, admin (admin implies every scope).")
    ] = "query",
    workspace: Annotated[
        str, typer.Option(help="The workspace whose collections, sources and threads the key sees.")
    ] = "default",
) -> None:
    """Create a key and print it once. It is alone on the last line; only its hash is stored."""
    from core.storage.keys import KeyFileError, hash_key, key_id, read_key_file
    from core.storage.workspaces import WorkspaceError, validate_workspace

    chosen = _scopes(scopes)
    try:
        validate_workspace(workspace)
    except WorkspaceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--workspace") from exc
    settings, table, where = _key_table()
    try:
        if any(spec.name == name for spec in [*settings.api_keys, *read_key_file(settings.keys_file)]):
            raise KeyFileError(f"a key named {name!r} already exists (in DOCENT_API_KEYS or the keys file)")
        created = datetime.now(UTC).isoformat(timespec="seconds")
        key = table.add(name, chosen, created, workspace=workspace)
    except (KeyFileError, ValueError) as exc:
        fail(exc, code=1)
    typer.echo(
        f"Created key {name!r} (id {key_id(hash_key(key))}) in workspace {workspace!r} with scopes"
        f" {','.join(chosen)}; its hash is in {where}."
    )
    typer.echo("Store the key now: it is not shown again. Send it as `Authorization: Bearer <key>`.")
    typer.echo(key)


@keys_app.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the keys in the database and the keys file: names, ids, workspaces, scopes and creation time;
    never the keys."""
    from core.storage.keys import KeyFileError, read_key_file

    settings, table, where = _key_table()
    try:
        stored = [(spec, "database") for spec in table.stored()]
        stored += [(spec, "keys file") for spec in read_key_file(settings.keys_file)]
    except KeyFileError as exc:
        fail(exc, code=1)
    configured = [spec.name for spec in settings.api_keys]
    if as_json:
        rows = [
            {"id": spec.id, **spec.model_dump(exclude={"sha256"}), "stored_in": origin}
            for spec, origin in stored
        ]
        typer.echo(
            json.dumps(
                {
                    "database": where,
                    "keys_file": str(settings.keys_file),
                    "keys": rows,
                    "from_settings": configured,
                }
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    listing = Table("name", "id", "workspace", "scopes", "created", "stored in", title=where)
    for spec, origin in stored:
        listing.add_row(
            spec.name, spec.id, spec.workspace, ",".join(spec.scopes), spec.created_at or "", origin
        )
    Console().print(listing)
    if configured:
        typer.echo(f"Also from DOCENT_API_KEYS: {', '.join(configured)}")
    if os.environ.get("DOCENT_AUTH", "").lower() == "off":
        typer.echo("Note: DOCENT_AUTH=off, so the server ignores keys.")


@keys_app.command("revoke")
def revoke_key(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: remove it from the database (or the keys file). Servers stop accepting it within a
    second."""
    from core.storage.keys import KeyFileError, remove_key

    settings, table, _ = _key_table()
    try:
        if not table.remove(name):
            remove_key(settings.keys_file, name)
    except KeyFileError as exc:
        fail(exc, code=1)
    typer.echo(f"Revoked key {name!r}.")


def _key_table() -> tuple[Settings, KeyTable, str]:
    """The settings, the database's key table, and where that database is (for messages)."""
    from core.settings import get_settings
    from core.storage.db import SchemaError, open_database
    from core.storage.keys import KeyTable

    settings = get_settings()
    try:
        engine = open_database(settings)
    except SchemaError as exc:
        fail(exc, code=1)
    return settings, KeyTable(engine), engine.url.render_as_string(hide_password=True)
