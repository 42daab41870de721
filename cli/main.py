"""The `docent` command: ingest, extract, ask, serve, worker, mcp, eval, sources, reindex, keys, workspaces
and db.

Only the app is assembled here; each command imports what it needs when it runs, so `docent --help` (and
any command's `--help`) starts in a fraction of a second.
"""

from __future__ import annotations

import os

import typer

from cli.ask import ask
from cli.db import db_app
from cli.eval import evaluate
from cli.extract import extract
from cli.ingest import ingest, reindex
from cli.keys import keys_app
from cli.mcp import mcp
from cli.serve import serve
from cli.sources import sources_app
from cli.worker import worker
from cli.workspaces import workspaces_app

# Plain (click) help: rendering it with rich would double `docent --help`'s start-up time.
app = typer.Typer(
    help="Docent: ask questions about your web pages and PDFs, with citations.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.command()(ingest)
app.command()(extract)
app.command("eval")(evaluate)
app.command()(reindex)
app.command()(ask)
app.command()(serve)
app.command()(worker)
app.command()(mcp)
app.add_typer(sources_app, name="sources")
app.add_typer(keys_app, name="keys")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(db_app, name="db")


def main() -> None:
    """Console-script entry point. Files Docent writes (stores, uploads, keys) are its owner's alone."""
    os.umask(0o077)
    app()


if __name__ == "__main__":
    main()
